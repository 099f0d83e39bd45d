/**
 * Client-to-server WebSocket binary messages (RFC 6455 §5.2) for the port-forward tunnel (and
 * its pongs and close), built straight into the buffer that goes to the socket: WebSocket
 * header, masking key, then the payload given as a head and a body (a SPDY frame header and the
 * app's bytes), masked a 32-bit word at a time (§5.3).
 *
 * Why not `ws`'s `send`: without its native helper (never under Deno) `ws` masks a byte at a
 * time in JavaScript into a buffer of its own, after the SPDY framing copied the app's bytes into
 * another — two allocations and copies per frame and the largest JavaScript cost on the main
 * thread during a bulk transfer (profiled through the real API server, `deno task bench tier`).
 * Here the payload is copied once (a native copy) and masked in place four bytes per step; with
 * a {@link CoalescingWriter} the frames written while the socket is busy share one reused buffer,
 * so a bulk transfer allocates nothing per frame and the socket gets one write per batch.
 */
import type { FrameFormat } from "./coalescing_writer.ts";
/** Random masking keys fetched at a time (RFC 6455 §5.3: a fresh, unpredictable key per frame). */
const KEYS_PER_REFILL = 1024;

/** Bytes of a masked frame whose payload is `payloadLength` bytes. */
export function maskedFrameLength(payloadLength: number): number {
  return headerLength(payloadLength) + payloadLength;
}

function headerLength(payloadLength: number): number {
  const extended = payloadLength > 0xffff ? 8 : payloadLength > 125 ? 2 : 0;
  return 2 + extended + 4;
}

/** Builds masked binary messages; keeps a pool of random keys. */
export class MaskedFrameEncoder implements FrameFormat {
  readonly #keys = new Uint8Array(4 * KEYS_PER_REFILL);
  #nextKey = KEYS_PER_REFILL;
  /** The key rotated to the payload's alignment, as bytes and as the word they make. */
  readonly #rotated = new Uint8Array(4);
  readonly #rotatedWord = new Uint32Array(this.#rotated.buffer);

  length(payloadLength: number): number {
    return maskedFrameLength(payloadLength);
  }

  /** One unfragmented binary message (FIN, opcode 2) whose payload is `head` then `body`. */
  encode(head: Uint8Array, body: Uint8Array): Uint8Array {
    const frame = new Uint8Array(maskedFrameLength(head.length + body.length));
    this.encodeInto(frame, 0, head, body);
    return frame;
  }

  /**
   * The format of frames with `opcode` instead (a pong or a close, RFC 6455 §5.5), masked with
   * keys from the same pool.
   */
  withOpcode(opcode: number): FrameFormat {
    return {
      length: maskedFrameLength,
      encodeInto: (target, offset, head, body) =>
        this.encodeInto(target, offset, head, body, opcode),
    };
  }

  /**
   * Writes the message {@link encode} builds into `target` at `offset` (which must have room
   * for {@link maskedFrameLength} bytes); returns the offset after it.
   */
  encodeInto(
    target: Uint8Array,
    offset: number,
    head: Uint8Array,
    body: Uint8Array,
    opcode = 0x2,
  ): number {
    const length = head.length + body.length;
    const header = headerLength(length);
    target[offset] = 0x80 | opcode; // FIN: a message of one frame
    if (length <= 125) target[offset + 1] = 0x80 | length;
    else if (length <= 0xffff) {
      target[offset + 1] = 0x80 | 126;
      target[offset + 2] = length >>> 8;
      target[offset + 3] = length & 0xff;
    } else {
      target[offset + 1] = 0x80 | 127;
      new DataView(target.buffer, target.byteOffset + offset + 2, 8).setBigUint64(
        0,
        BigInt(length),
      );
    }
    const keyAt = offset + header - 4;
    const k = 4 * this.#nextKeyIndex();
    for (let i = 0; i < 4; i++) target[keyAt + i] = this.#keys[k + i];
    const payload = offset + header;
    target.set(head, payload);
    target.set(body, payload + head.length);
    this.#mask(target, payload, length, keyAt);
    return payload + length;
  }

  /**
   * XORs `length` bytes at `start` with the key at `keyAt`: byte by byte up to a 4-byte
   * boundary of the underlying buffer, then a word at a time with the key rotated to match.
   */
  #mask(target: Uint8Array, start: number, length: number, keyAt: number): void {
    const absolute = target.byteOffset + start;
    const lead = Math.min(length, (4 - (absolute & 3)) & 3);
    for (let i = 0; i < lead; i++) target[start + i] ^= target[keyAt + (i & 3)];
    const words = (length - lead) >>> 2;
    if (words > 0) {
      for (let i = 0; i < 4; i++) this.#rotated[i] = target[keyAt + ((lead + i) & 3)];
      const key = this.#rotatedWord[0];
      const view = new Uint32Array(target.buffer, absolute + lead, words);
      for (let i = 0; i < words; i++) view[i] ^= key;
    }
    for (let i = lead + 4 * words; i < length; i++) target[start + i] ^= target[keyAt + (i & 3)];
  }

  #nextKeyIndex(): number {
    if (this.#nextKey === KEYS_PER_REFILL) {
      crypto.getRandomValues(this.#keys);
      this.#nextKey = 0;
    }
    return this.#nextKey++;
  }
}
