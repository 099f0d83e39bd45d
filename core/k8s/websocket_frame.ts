/**
 * Client-to-server WebSocket binary messages (RFC 6455 §5.2) for the port-forward tunnel's data,
 * built in one buffer: WebSocket header, masking key, then the payload given as a head and a body
 * (a SPDY frame header and the app's bytes), masked a 32-bit word at a time (§5.3).
 *
 * Why not `ws`'s `send`: without its native helper (never under Deno) `ws` masks a byte at a
 * time in JavaScript into a buffer of its own, after the SPDY framing copied the app's bytes into
 * another — two allocations and copies per frame and the largest JavaScript cost on the main
 * thread during a bulk transfer (profiled through the real API server, `deno task bench tier`).
 * Here the payload is copied once (a native copy) and masked in place four bytes per step.
 */

/** Random masking keys fetched at a time (RFC 6455 §5.3: a fresh, unpredictable key per frame). */
const KEYS_PER_REFILL = 1024;

/** Builds masked binary messages; keeps a pool of random keys. */
export class MaskedFrameEncoder {
  readonly #keys = new Uint32Array(KEYS_PER_REFILL);
  #nextKey = KEYS_PER_REFILL;

  /** One unfragmented binary message (FIN, opcode 2) whose payload is `head` then `body`. */
  encode(head: Uint8Array, body: Uint8Array): Uint8Array {
    const length = head.length + body.length;
    const extended = length > 0xffff ? 8 : length > 125 ? 2 : 0;
    const headerLength = 2 + extended + 4;
    // The payload starts on a 4-byte boundary of the buffer, so it can be viewed as 32-bit words.
    const pad = (4 - (headerLength % 4)) % 4;
    const buffer = new ArrayBuffer(pad + headerLength + length);
    const frame = new Uint8Array(buffer, pad, headerLength + length);
    frame[0] = 0x82; // FIN, binary
    if (extended === 0) frame[1] = 0x80 | length;
    else if (extended === 2) {
      frame[1] = 0x80 | 126;
      frame[2] = length >>> 8;
      frame[3] = length & 0xff;
    } else {
      frame[1] = 0x80 | 127;
      new DataView(buffer, pad + 2, 8).setBigUint64(0, BigInt(length));
    }
    // The key goes in as a word too: its bytes are then in the same order as the payload words'.
    const key = this.#key();
    new Uint32Array(buffer, pad + headerLength - 4, 1)[0] = key;
    const payload = pad + headerLength;
    frame.set(head, headerLength);
    frame.set(body, headerLength + head.length);
    const words = new Uint32Array(buffer, payload, length >>> 2);
    for (let i = 0; i < words.length; i++) words[i] ^= key;
    const keyBytes = frame.subarray(headerLength - 4, headerLength);
    for (let i = words.length * 4; i < length; i++) frame[headerLength + i] ^= keyBytes[i & 3];
    return frame;
  }

  #key(): number {
    if (this.#nextKey === KEYS_PER_REFILL) {
      crypto.getRandomValues(this.#keys);
      this.#nextKey = 0;
    }
    return this.#keys[this.#nextKey++];
  }
}
