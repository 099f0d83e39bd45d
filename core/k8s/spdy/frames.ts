/**
 * SPDY/3.1 framing as Kubernetes port-forward uses it (kubernetes.md §3): control frames
 * (SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE) and data frames, with an
 * incremental parser that accepts bytes split or coalesced anywhere (the WebSocket tunnel splits
 * frames across messages, §3.3).
 */

export const SYN_STREAM = 1;
export const SYN_REPLY = 2;
export const RST_STREAM = 3;
export const SETTINGS = 4;
export const PING = 6;
export const GOAWAY = 7;
export const WINDOW_UPDATE = 9;
export const FLAG_FIN = 0x01;
/** RST_STREAM status CANCEL. */
export const RST_CANCEL = 5;

/** A parsed frame. */
export type SpdyFrame =
  | { kind: "data"; streamId: number; flags: number; data: Uint8Array }
  | { kind: "control"; type: number; flags: number; payload: Uint8Array };

/** Accumulates bytes and yields whole frames. */
export class FrameParser {
  #buffer = new Uint8Array(0);

  /** Adds bytes; returns every frame now complete. Throws on a frame that cannot be SPDY/3. */
  push(bytes: Uint8Array): SpdyFrame[] {
    const merged = new Uint8Array(this.#buffer.length + bytes.length);
    merged.set(this.#buffer);
    merged.set(bytes, this.#buffer.length);
    const frames: SpdyFrame[] = [];
    let offset = 0;
    while (merged.length - offset >= 8) {
      const length = (merged[offset + 5] << 16) | (merged[offset + 6] << 8) | merged[offset + 7];
      if (merged.length - offset < 8 + length) break;
      const flags = merged[offset + 4];
      const body = merged.slice(offset + 8, offset + 8 + length);
      if (merged[offset] & 0x80) {
        const version = ((merged[offset] & 0x7f) << 8) | merged[offset + 1];
        if (version !== 3) throw new Error(`SPDY version ${version} is not 3`);
        frames.push({
          kind: "control",
          type: (merged[offset + 2] << 8) | merged[offset + 3],
          flags,
          payload: body,
        });
      } else {
        const streamId =
          ((merged[offset] & 0x7f) << 24 | merged[offset + 1] << 16 | merged[offset + 2] << 8 |
            merged[offset + 3]) >>> 0;
        frames.push({ kind: "data", streamId, flags, data: body });
      }
      offset += 8 + length;
    }
    this.#buffer = merged.slice(offset);
    return frames;
  }
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
  new DataView(out.buffer).setUint32(0, streamId & 0x7fffffff);
  out[4] = flags;
  out[5] = (data.length >> 16) & 0xff;
  out[6] = (data.length >> 8) & 0xff;
  out[7] = data.length & 0xff;
  out.set(data, 8);
  return out;
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

/** The stream id at the start of a control payload. */
export function payloadStreamId(payload: Uint8Array): number {
  return new DataView(payload.buffer, payload.byteOffset).getUint32(0) & 0x7fffffff;
}
