/**
 * SPDY/3.1 framing as Kubernetes port-forward uses it (docs/portforward.md §3): control
 * frames (SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE) and data
 * frames, with an incremental parser that accepts bytes split or coalesced anywhere (the WebSocket tunnel splits
 * frames across messages, docs/portforward.md §7).
 */

export const SYN_STREAM = 1;
export const SYN_REPLY = 2;
export const RST_STREAM = 3;
export const SETTINGS = 4;
export const PING = 6;
export const GOAWAY = 7;
export const WINDOW_UPDATE = 9;
export const FLAG_FIN = 0x01;
/** RST_STREAM status PROTOCOL_ERROR (SPDY/3.1 §2.6.3). */
export const RST_PROTOCOL_ERROR = 1;
/** RST_STREAM status CANCEL. */
export const RST_CANCEL = 5;
/** RST_STREAM status FLOW_CONTROL_ERROR: the peer sent past the window (SPDY/3.1 §2.6.8). */
export const RST_FLOW_CONTROL_ERROR = 7;
/** The SETTINGS id of the initial per-stream window (SPDY/3.1 §2.6.4). */
export const SETTINGS_INITIAL_WINDOW_SIZE = 7;
/** Every stream's and the session's window before any SETTINGS or WINDOW_UPDATE (§2.6.8). */
export const DEFAULT_WINDOW = 64 * 1024;
/** A window may never grow past 2^31 - 1 (§2.6.8). */
export const MAX_WINDOW = 0x7fffffff;
/**
 * The largest frame the parser accepts. SPDY allows 2^24 - 1, but Kubernetes' spdystream writes a
 * data frame per write of the kubelet's 32 KiB copy buffer and header blocks of a few dozen bytes,
 * so a bigger frame is hostile; the cap bounds what one partial frame can make the parser hold.
 */
export const MAX_FRAME_LENGTH = 1024 * 1024;

/** Frames up to this size (a 32 KiB data frame and its header) are assembled in a buffer of
 * their own size. */
const ASSEMBLED_FRAME_LIMIT = 64 * 1024;

/** A parsed frame. */
export type SpdyFrame =
  | {
    kind: "data";
    streamId: number;
    flags: number;
    data: Uint8Array;
    /** A piece of a streamed frame whose body continues in later pieces (`streamData`). */
    more?: boolean;
  }
  | { kind: "control"; type: number; flags: number; payload: Uint8Array };

/** A frame the parser refuses: the session cannot go on (its byte stream lost framing). */
export class SpdyFramingError extends Error {}

/** Accumulates bytes and yields whole frames. */
export class FrameParser {
  /** Bytes of one incomplete frame, at `[#start, #end)` (see {@link #append}). */
  #buffer = new Uint8Array(0);
  #start = 0;
  #end = 0;
  readonly #maxFrameLength: number;
  readonly #viewInput: boolean;
  readonly #streamData: boolean;
  /** With `streamData`: the data frame whose body is being handed on piece by piece. */
  #piece?: { streamId: number; flags: number; remaining: number };

  /**
   * With `viewInput` the caller promises never to change bytes it pushed: a frame whose body is
   * at least half of a pushed chunk is then a view into it instead of a copy (a data frame per
   * WebSocket message is the bulk case). Smaller frames are copied either way, so a frame never
   * keeps more than twice its size alive.
   *
   * With `streamData` a data frame's body is handed on as it arrives, as data frames of their own
   * (only the last carries the frame's FIN), instead of being assembled first: SPDY data is a
   * byte stream, so a receiver loses nothing, and a 32 KiB frame spread over three TLS records
   * costs neither a buffer of its own nor a copy.
   */
  constructor(
    maxFrameLength = MAX_FRAME_LENGTH,
    options: { viewInput?: boolean; streamData?: boolean } = {},
  ) {
    this.#maxFrameLength = maxFrameLength;
    this.#viewInput = options.viewInput ?? false;
    this.#streamData = options.streamData ?? false;
  }

  /** Adds bytes; returns every frame now complete. Throws {@link SpdyFramingError} on a frame
   * that cannot be SPDY/3 or is longer than the limit. */
  push(bytes: Uint8Array): SpdyFrame[] {
    const frames: SpdyFrame[] = [];
    // The body of a data frame being streamed continues first.
    let input = this.#continuePiece(bytes, frames, bytes.length);
    // A frame held back from earlier chunks is completed first, taking only its own bytes.
    while (this.#end > this.#start && input.length > 0) {
      const held = this.#end - this.#start;
      const wanted = held < 8 ? 8 - held : 8 + this.#length(this.#buffer, this.#start) - held;
      const n = Math.min(wanted, input.length);
      this.#append(input.subarray(0, n));
      input = input.subarray(n);
      const have = this.#end - this.#start;
      if (have === 8 && this.#streams(this.#buffer, this.#start)) {
        // Its header is in: the body streams from here on.
        this.#startPiece(this.#buffer, this.#start);
        this.#release();
        input = this.#continuePiece(input, frames, bytes.length);
      } else if (have >= 8 && have === 8 + this.#length(this.#buffer, this.#start)) {
        frames.push(this.#takeHeld(have));
      }
    }
    // The rest is parsed in place.
    let offset = 0;
    while (input.length - offset >= 8) {
      const length = this.#length(input, offset);
      if (input.length - offset < 8 + length) {
        if (!this.#streams(input, offset)) break;
        this.#startPiece(input, offset);
        this.#continuePiece(input.subarray(offset + 8), frames, bytes.length);
        offset = input.length;
        break;
      }
      const view = this.#viewInput && 2 * length >= bytes.length;
      frames.push(decode(input, offset, length, view));
      offset += 8 + length;
    }
    if (offset < input.length) this.#append(input.subarray(offset));
    return frames;
  }

  /** The frame at `offset` (its header complete) is a non-empty data frame to stream. */
  #streams(source: Uint8Array, offset: number): boolean {
    return this.#streamData && (source[offset] & 0x80) === 0 && this.#length(source, offset) > 0;
  }

  #startPiece(source: Uint8Array, offset: number): void {
    const streamId =
      ((source[offset] & 0x7f) << 24 | source[offset + 1] << 16 | source[offset + 2] << 8 |
        source[offset + 3]) >>> 0;
    this.#piece = {
      streamId,
      flags: source[offset + 4],
      remaining: this.#length(source, offset),
    };
  }

  /**
   * Hands on the start of `input` as the streamed body's next piece (when a body is streaming);
   * returns what follows it. `chunkLength` is the pushed chunk's, for the view-or-copy rule.
   */
  #continuePiece(input: Uint8Array, frames: SpdyFrame[], chunkLength: number): Uint8Array {
    if (!this.#piece || input.length === 0) return input;
    const n = Math.min(this.#piece.remaining, input.length);
    frames.push(this.#takePiece(input.subarray(0, n), chunkLength));
    return input.subarray(n);
  }

  /** `bytes` of the streamed body, as a data frame. */
  #takePiece(bytes: Uint8Array, chunkLength: number): SpdyFrame {
    const n = bytes.length;
    const piece = this.#piece!;
    piece.remaining -= n;
    const last = piece.remaining === 0;
    if (last) this.#piece = undefined;
    const view = this.#viewInput && 2 * n >= chunkLength;
    return {
      kind: "data",
      streamId: piece.streamId,
      flags: last ? piece.flags : piece.flags & ~FLAG_FIN,
      data: view ? bytes : bytes.slice(),
      ...(last ? {} : { more: true }),
    };
  }

  /** The length field of the frame at `offset`; throws if over the limit. */
  #length(source: Uint8Array, offset: number): number {
    const length = (source[offset + 5] << 16) | (source[offset + 6] << 8) | source[offset + 7];
    if (length > this.#maxFrameLength) {
      throw new SpdyFramingError(
        `SPDY frame of ${length} bytes is over the ${this.#maxFrameLength}-byte limit`,
      );
    }
    return length;
  }

  /**
   * Hands out the held frame, now complete. A frame that fills most of its buffer (one assembled
   * in a buffer of its own size, see {@link #append}) takes the buffer along instead of being
   * copied a second time.
   */
  #takeHeld(total: number): SpdyFrame {
    const view = 2 * total >= this.#buffer.length;
    const frame = decode(this.#buffer, this.#start, total - 8, view);
    if (view) this.#buffer = new Uint8Array(0);
    this.#release();
    return frame;
  }

  /**
   * Appends after the held bytes (compacting or growing the buffer). Once the frame's header is
   * in, a frame no bigger than a bulk data frame gets a buffer of exactly its size; others grow
   * geometrically, so a frame that arrives a byte at a time costs linear time, not quadratic.
   */
  #append(bytes: Uint8Array): void {
    const held = this.#end - this.#start;
    const needed = held + bytes.length;
    if (this.#end + bytes.length > this.#buffer.length) {
      let size = Math.max(needed, 2 * this.#buffer.length, 256);
      if (needed >= 8) {
        const header = new Uint8Array(8);
        header.set(this.#buffer.subarray(this.#start, this.#start + Math.min(held, 8)));
        if (held < 8) header.set(bytes.subarray(0, 8 - held), held);
        const total = 8 + this.#length(header, 0);
        if (total <= ASSEMBLED_FRAME_LIMIT) size = Math.max(needed, total);
      }
      const target = this.#buffer.length >= needed ? this.#buffer : new Uint8Array(size);
      target.set(this.#buffer.subarray(this.#start, this.#end));
      this.#buffer = target;
      this.#start = 0;
      this.#end = held;
    }
    this.#buffer.set(bytes, this.#end);
    this.#end += bytes.length;
  }

  /** Empties the buffer; drops one a big frame grew. */
  #release(): void {
    this.#start = 0;
    this.#end = 0;
    if (this.#buffer.length > 64 * 1024) this.#buffer = new Uint8Array(0);
  }
}

/** The frame of `length` body bytes at `offset`; its body a view into `source` or a copy. */
function decode(source: Uint8Array, offset: number, length: number, view: boolean): SpdyFrame {
  const flags = source[offset + 4];
  const body = view
    ? source.subarray(offset + 8, offset + 8 + length)
    : source.slice(offset + 8, offset + 8 + length);
  if (source[offset] & 0x80) {
    const version = ((source[offset] & 0x7f) << 8) | source[offset + 1];
    if (version !== 3) throw new SpdyFramingError(`SPDY version ${version} is not 3`);
    return {
      kind: "control",
      type: (source[offset + 2] << 8) | source[offset + 3],
      flags,
      payload: body,
    };
  }
  const streamId =
    ((source[offset] & 0x7f) << 24 | source[offset + 1] << 16 | source[offset + 2] << 8 |
      source[offset + 3]) >>> 0;
  return { kind: "data", streamId, flags, data: body };
}

/** A control frame. */
export function controlFrame(type: number, flags: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + payload.length);
  out[0] = 0x80;
  out[1] = 3;
  out[2] = type >> 8;
  out[3] = type & 0xff;
  out[4] = flags;
  out[5] = (payload.length >> 16) & 0xff;
  out[6] = (payload.length >> 8) & 0xff;
  out[7] = payload.length & 0xff;
  out.set(payload, 8);
  return out;
}

/** A data frame. */
export function dataFrame(streamId: number, flags: number, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + data.length);
  writeDataFrameHeader(out, streamId, flags, data.length);
  out.set(data, 8);
  return out;
}

/** Writes a data frame's 8-byte header (stream id, flags, length) at the start of `target`. */
export function writeDataFrameHeader(
  target: Uint8Array,
  streamId: number,
  flags: number,
  length: number,
): void {
  const id = streamId & 0x7fffffff;
  target[0] = id >>> 24;
  target[1] = (id >>> 16) & 0xff;
  target[2] = (id >>> 8) & 0xff;
  target[3] = id & 0xff;
  target[4] = flags;
  target[5] = (length >> 16) & 0xff;
  target[6] = (length >> 8) & 0xff;
  target[7] = length & 0xff;
}

/** SYN_STREAM payload: stream id, associated id 0, priority 0, slot 0, then the header block. */
export function synStreamPayload(streamId: number, headerBlock: Uint8Array): Uint8Array {
  const out = new Uint8Array(10 + headerBlock.length);
  new DataView(out.buffer).setUint32(0, streamId & 0x7fffffff);
  out.set(headerBlock, 10);
  return out;
}

/** SYN_REPLY payload: stream id and the header block. */
export function synReplyPayload(streamId: number, headerBlock: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + headerBlock.length);
  new DataView(out.buffer).setUint32(0, streamId & 0x7fffffff);
  out.set(headerBlock, 4);
  return out;
}

/** RST_STREAM payload. */
export function rstStreamPayload(streamId: number, status: number): Uint8Array {
  const out = new Uint8Array(8);
  const view = new DataView(out.buffer);
  view.setUint32(0, streamId & 0x7fffffff);
  view.setUint32(4, status);
  return out;
}

/** WINDOW_UPDATE payload: stream id (0: the session, SPDY/3.1 §2.6.8) and the delta. */
export function windowUpdatePayload(streamId: number, delta: number): Uint8Array {
  const out = new Uint8Array(8);
  const view = new DataView(out.buffer);
  view.setUint32(0, streamId & 0x7fffffff);
  view.setUint32(4, delta & 0x7fffffff);
  return out;
}

/** SETTINGS payload (§2.6.4): a count, then per entry flags (0), a 24-bit id and a 32-bit value. */
export function settingsPayload(entries: [id: number, value: number][]): Uint8Array {
  const out = new Uint8Array(4 + 8 * entries.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, entries.length);
  entries.forEach(([id, value], i) => {
    view.setUint32(4 + 8 * i, id & 0xffffff);
    view.setUint32(8 + 8 * i, value);
  });
  return out;
}

/** The entries of a SETTINGS payload, id → value; entries the payload is too short for are
 * ignored (the count is the peer's word, the length is not). */
export function parseSettings(payload: Uint8Array): Map<number, number> {
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const out = new Map<number, number>();
  if (payload.length < 4) return out;
  const count = Math.min(view.getUint32(0), Math.floor((payload.length - 4) / 8));
  for (let i = 0; i < count; i++) {
    out.set(view.getUint32(4 + 8 * i) & 0xffffff, view.getUint32(8 + 8 * i));
  }
  return out;
}

/** The 31-bit word at `index` (0: the stream id) of a control payload. */
export function payloadWord(payload: Uint8Array, index: number): number {
  if (payload.length < 4 * index + 4) throw new SpdyFramingError("SPDY control frame too short");
  return new DataView(payload.buffer, payload.byteOffset).getUint32(4 * index) & 0x7fffffff;
}

/** The stream id at the start of a control payload. */
export function payloadStreamId(payload: Uint8Array): number {
  return payloadWord(payload, 0);
}
