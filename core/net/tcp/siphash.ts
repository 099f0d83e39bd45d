/**
 * SipHash-2-4 (Aumasson and Bernstein, "SipHash: a fast short-input PRF", 2012): a keyed hash of
 * short messages that cannot be forged without the key. Linux's SYN cookies use it
 * (secure_tcp_syn_cookie, net/core/secure_seq.c); so do ours (syn_cookie.ts).
 *
 * JavaScript has no 64-bit integers but BigInt, which allocates per operation, so each 64-bit
 * word of the state is a pair of 32-bit halves.
 */

/** A SipHash-2-4 key (16 bytes) and the state the hash runs in. */
export class SipHash24 {
  /** The key as k0 = [lo, hi], k1 = [lo, hi] (little-endian, as the reference reads it). */
  readonly #key: Uint32Array;
  /** v0..v3 as [lo, hi] pairs: v0 = s[0], s[1]; v1 = s[2], s[3]; and so on. */
  readonly #s = new Uint32Array(8);

  constructor(key: Uint8Array) {
    if (key.length !== 16) throw new RangeError(`a SipHash key has 16 bytes, not ${key.length}`);
    const view = new DataView(key.buffer, key.byteOffset, 16);
    this.#key = Uint32Array.of(
      view.getUint32(0, true),
      view.getUint32(4, true),
      view.getUint32(8, true),
      view.getUint32(12, true),
    );
  }

  /** The 64-bit hash of `message`, as [low 32 bits, high 32 bits]. */
  hash(message: Uint8Array): [number, number] {
    const k = this.#key;
    const s = this.#s;
    // "somepseudorandomlygeneratedbytes"
    s[0] = k[0] ^ 0x70736575;
    s[1] = k[1] ^ 0x736f6d65;
    s[2] = k[2] ^ 0x6e646f6d;
    s[3] = k[3] ^ 0x646f7261;
    s[4] = k[0] ^ 0x6e657261;
    s[5] = k[1] ^ 0x6c796765;
    s[6] = k[2] ^ 0x79746573;
    s[7] = k[3] ^ 0x74656462;
    const whole = message.length & ~7;
    for (let i = 0; i < whole; i += 8) {
      this.#absorb(readU32Le(message, i), readU32Le(message, i + 4));
    }
    // The last word: the remaining bytes, and the message length (mod 256) in the top byte.
    let lo = 0;
    let hi = (message.length & 0xff) << 24;
    for (let i = whole; i < message.length; i++) {
      const shift = 8 * (i - whole);
      if (shift < 32) lo |= message[i] << shift;
      else hi |= message[i] << (shift - 32);
    }
    this.#absorb(lo >>> 0, hi >>> 0);
    s[4] ^= 0xff;
    for (let round = 0; round < 4; round++) this.#round();
    return [(s[0] ^ s[2] ^ s[4] ^ s[6]) >>> 0, (s[1] ^ s[3] ^ s[5] ^ s[7]) >>> 0];
  }

  /** One message word m: v3 ^= m, two rounds, v0 ^= m. */
  #absorb(lo: number, hi: number): void {
    const s = this.#s;
    s[6] ^= lo;
    s[7] ^= hi;
    this.#round();
    this.#round();
    s[0] ^= lo;
    s[1] ^= hi;
  }

  /** SipRound. */
  #round(): void {
    const s = this.#s;
    add(s, 0, 2); // v0 += v1
    rotate(s, 2, 13);
    xor(s, 2, 0); // v1 ^= v0
    rotate(s, 0, 32);
    add(s, 4, 6); // v2 += v3
    rotate(s, 6, 16);
    xor(s, 6, 4); // v3 ^= v2
    add(s, 0, 6); // v0 += v3
    rotate(s, 6, 21);
    xor(s, 6, 0); // v3 ^= v0
    add(s, 4, 2); // v2 += v1
    rotate(s, 2, 17);
    xor(s, 2, 4); // v1 ^= v2
    rotate(s, 4, 32);
  }
}

function readU32Le(bytes: Uint8Array, at: number): number {
  return (bytes[at] | (bytes[at + 1] << 8) | (bytes[at + 2] << 16) | (bytes[at + 3] << 24)) >>> 0;
}

/** s[a] += s[b] (64-bit words at even indices: low half first). */
function add(s: Uint32Array, a: number, b: number): void {
  const lo = s[a] + s[b];
  s[a + 1] = s[a + 1] + s[b + 1] + (lo > 0xffffffff ? 1 : 0);
  s[a] = lo;
}

/** s[a] ^= s[b] */
function xor(s: Uint32Array, a: number, b: number): void {
  s[a] ^= s[b];
  s[a + 1] ^= s[b + 1];
}

/** s[a] = s[a] rotated left by `bits` (1–32). */
function rotate(s: Uint32Array, a: number, bits: number): void {
  const lo = s[a];
  const hi = s[a + 1];
  if (bits === 32) {
    s[a] = hi;
    s[a + 1] = lo;
    return;
  }
  s[a] = (lo << bits) | (hi >>> (32 - bits));
  s[a + 1] = (hi << bits) | (lo >>> (32 - bits));
}
