/**
 * Server-to-client WebSocket frames (RFC 6455 §5.2) read off the port-forward tunnel's byte
 * stream, for a SPDY session that wants bytes, not messages.
 *
 * Why not `ws`'s receiver: it builds a message object per frame, joins fragments into a fresh
 * buffer, and emits an event per message — work the SPDY session undoes, since SPDY is a byte
 * stream that frames itself. Here a binary payload is handed on as it arrives, piece by piece, as
 * views into the chunks read (no copy, no join): a fragmented message (§5.4) is simply its
 * pieces in order. Only frame headers (at most 14 bytes) and control payloads (at most 125,
 * §5.5) are ever copied.
 *
 * What the client must refuse (a masked server frame, §5.1; reserved bits without an extension,
 * §5.2; an unknown opcode, a fragmented or oversized control frame, §5.5; a continuation with no
 * message, or a new message inside one, §5.4) fails with a {@link WebSocketProtocolError}, as
 * does a text message (the tunnel carries only binary SPDY) and a frame or message declaring
 * more than the reader's limit — checked on the header, so nothing of that size is allocated.
 */

/** Opcodes (RFC 6455 §5.2). */
export const OPCODE_CONTINUATION = 0x0;
export const OPCODE_TEXT = 0x1;
export const OPCODE_BINARY = 0x2;
export const OPCODE_CLOSE = 0x8;
export const OPCODE_PING = 0x9;
export const OPCODE_PONG = 0xa;

/** Close status codes (RFC 6455 §7.4.1). */
export const CLOSE_NORMAL = 1000;
export const CLOSE_PROTOCOL_ERROR = 1002;
export const CLOSE_UNSUPPORTED_DATA = 1003;
export const CLOSE_TOO_BIG = 1009;

/** The largest control frame payload (RFC 6455 §5.5). */
const MAX_CONTROL_PAYLOAD = 125;

/** The peer broke RFC 6455; `code` is the status to close with (§7.4.1). */
export class WebSocketProtocolError extends Error {
  constructor(message: string, readonly code: number = CLOSE_PROTOCOL_ERROR) {
    super(message);
  }
}

/** What the reader hands on. Payload views are valid only during the call. */
export interface WebSocketReaderHandlers {
  /** A frame's header was read (anything from the peer: liveness). */
  frame(): void;
  /** A piece of a binary message's payload, in order. */
  binary(bytes: Uint8Array): void;
  /** A ping (§5.5.2): answer with a pong carrying `payload`. */
  ping(payload: Uint8Array): void;
  /** A pong (§5.5.3). */
  pong(payload: Uint8Array): void;
  /** A close frame (§5.5.1): its status code (absent if the body was empty) and reason. */
  close(code: number | undefined, reason: string): void;
}

/** Parses frames from chunks of any size; see the module comment. */
export class WebSocketReader {
  readonly #handlers: WebSocketReaderHandlers;
  readonly #maxMessage: number;
  /** The frame header being read: 2 bytes, then 0, 2 or 8 of extended length (§5.2). */
  readonly #header = new Uint8Array(10);
  #headerHave = 0;
  #headerNeed = 2;
  /** The frame being read (its header is complete while `#inFrame`). */
  #inFrame = false;
  #opcode = 0;
  #fin = false;
  #remaining = 0;
  /** A control frame's payload, collected whole before it is acted on. */
  readonly #control = new Uint8Array(MAX_CONTROL_PAYLOAD);
  #controlHave = 0;
  /** A binary message is open: continuations belong to it (§5.4). */
  #inMessage = false;
  #messageBytes = 0;
  #failed?: WebSocketProtocolError;

  /** `maxMessage`: the most bytes a frame or a (fragmented) message may declare. */
  constructor(handlers: WebSocketReaderHandlers, maxMessage: number) {
    this.#handlers = handlers;
    this.#maxMessage = maxMessage;
  }

  /**
   * Reads `chunk`, handing on what completes. Throws {@link WebSocketProtocolError} on a protocol
   * violation; the stream is unusable after that (every later push throws it again).
   */
  push(chunk: Uint8Array): void {
    if (this.#failed) throw this.#failed;
    try {
      this.#read(chunk);
    } catch (error) {
      if (error instanceof WebSocketProtocolError) this.#failed = error;
      throw error;
    }
  }

  #read(chunk: Uint8Array): void {
    let at = 0;
    while (at < chunk.length || (this.#inFrame && this.#remaining === 0)) {
      if (!this.#inFrame) {
        const take = Math.min(this.#headerNeed - this.#headerHave, chunk.length - at);
        this.#header.set(chunk.subarray(at, at + take), this.#headerHave);
        this.#headerHave += take;
        at += take;
        if (this.#headerHave < this.#headerNeed) return;
        if (this.#headerNeed === 2) {
          this.#headerNeed = 2 + this.#firstTwoBytes();
          if (this.#headerHave < this.#headerNeed) continue;
        }
        this.#startFrame();
        continue;
      }
      const take = Math.min(this.#remaining, chunk.length - at);
      const piece = chunk.subarray(at, at + take);
      at += take;
      this.#remaining -= take;
      if (this.#opcode === OPCODE_BINARY || this.#opcode === OPCODE_CONTINUATION) {
        if (take > 0) this.#handlers.binary(piece);
      } else {
        this.#control.set(piece, this.#controlHave);
        this.#controlHave += take;
      }
      if (this.#remaining === 0) this.#endFrame();
    }
  }

  /** Checks the first two header bytes; returns how many extended-length bytes follow. */
  #firstTwoBytes(): number {
    const b0 = this.#header[0];
    const b1 = this.#header[1];
    if (b0 & 0x70) throw new WebSocketProtocolError("a frame set reserved bits (§5.2)");
    if (b1 & 0x80) throw new WebSocketProtocolError("the server masked a frame (§5.1)");
    this.#fin = (b0 & 0x80) !== 0;
    this.#opcode = b0 & 0x0f;
    const length = b1 & 0x7f;
    switch (this.#opcode) {
      case OPCODE_BINARY:
        if (this.#inMessage) {
          throw new WebSocketProtocolError("a new message began inside a fragmented one (§5.4)");
        }
        break;
      case OPCODE_CONTINUATION:
        if (!this.#inMessage) {
          throw new WebSocketProtocolError("a continuation frame with no message to continue");
        }
        break;
      case OPCODE_TEXT:
        throw new WebSocketProtocolError(
          "a text message on the SPDY tunnel (it carries binary only)",
          CLOSE_UNSUPPORTED_DATA,
        );
      case OPCODE_CLOSE:
      case OPCODE_PING:
      case OPCODE_PONG:
        if (!this.#fin) throw new WebSocketProtocolError("a fragmented control frame (§5.5)");
        if (length > MAX_CONTROL_PAYLOAD) {
          throw new WebSocketProtocolError("a control frame over 125 bytes (§5.5)");
        }
        break;
      default:
        throw new WebSocketProtocolError(`unknown opcode ${this.#opcode} (§5.2)`);
    }
    return length === 127 ? 8 : length === 126 ? 2 : 0;
  }

  /** The header is complete: checks the length against the limit and opens the frame. */
  #startFrame(): void {
    const h = this.#header;
    const short = h[1] & 0x7f;
    let length = short;
    if (short === 126) length = (h[2] << 8) | h[3];
    else if (short === 127) {
      // The most significant bit must be 0 (§5.2); anything above 2^32 is over any limit.
      const high = ((h[2] << 24) | (h[3] << 16) | (h[4] << 8) | h[5]) >>> 0;
      const low = ((h[6] << 24) | (h[7] << 16) | (h[8] << 8) | h[9]) >>> 0;
      length = high > 0 ? Infinity : low;
    }
    const control = this.#opcode >= OPCODE_CLOSE;
    if (!control) {
      if (length > this.#maxMessage || this.#messageBytes + length > this.#maxMessage) {
        throw new WebSocketProtocolError(
          `a message over ${this.#maxMessage} bytes`,
          CLOSE_TOO_BIG,
        );
      }
      this.#messageBytes += length;
      this.#inMessage = !this.#fin;
      if (this.#fin) this.#messageBytes = 0;
    }
    this.#headerHave = 0;
    this.#headerNeed = 2;
    this.#inFrame = true;
    this.#remaining = length;
    this.#controlHave = 0;
    this.#handlers.frame();
  }

  #endFrame(): void {
    this.#inFrame = false;
    if (this.#opcode < OPCODE_CLOSE) return;
    const payload = this.#control.subarray(0, this.#controlHave);
    if (this.#opcode === OPCODE_PING) this.#handlers.ping(payload);
    else if (this.#opcode === OPCODE_PONG) this.#handlers.pong(payload);
    else {
      if (payload.length === 1) throw new WebSocketProtocolError("a close frame of one byte");
      let reason = "";
      try {
        reason = new TextDecoder("utf-8", { fatal: true }).decode(payload.subarray(2));
      } catch {
        throw new WebSocketProtocolError("a close reason that is not UTF-8 (§5.5.1)");
      }
      const code = payload.length >= 2 ? (payload[0] << 8) | payload[1] : undefined;
      if (code !== undefined && !sendableCloseCode(code)) {
        throw new WebSocketProtocolError(`a close frame with status ${code} (§7.4)`);
      }
      this.#handlers.close(code, reason);
    }
  }
}

/**
 * A status a close frame may carry (RFC 6455 §7.4.1, §7.4.2): the defined ones except those
 * reserved for reporting (1005, 1006, 1015), and the ranges for libraries and applications.
 */
function sendableCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) ||
    (code >= 3000 && code <= 4999);
}
