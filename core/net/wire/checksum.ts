/**
 * The Internet checksum (RFC 1071): ones'-complement sum of 16-bit words with deferred carry
 * folding. `sum` returns an unfolded 32-bit accumulator so pseudo-header and payload sums chain.
 */

/** Adds the bytes `[start, end)` of `buf` as big-endian 16-bit words to `initial`. */
export function sum(buf: Uint8Array, start: number, end: number, initial = 0): number {
  let acc = initial;
  let i = start;
  // Unrolled by 8 bytes; the accumulator stays far below 2^53 for any packet size.
  for (; i + 8 <= end; i += 8) {
    acc += ((buf[i] << 8) | buf[i + 1]) + ((buf[i + 2] << 8) | buf[i + 3]) +
      ((buf[i + 4] << 8) | buf[i + 5]) + ((buf[i + 6] << 8) | buf[i + 7]);
  }
  for (; i + 2 <= end; i += 2) acc += (buf[i] << 8) | buf[i + 1];
  if (i < end) acc += buf[i] << 8;
  return acc;
}

/** Folds an accumulator into the final 16-bit checksum (complemented). */
export function finish(acc: number): number {
  while (acc > 0xffff) acc = (acc & 0xffff) + Math.floor(acc / 0x10000);
  return (~acc) & 0xffff;
}

/** The IPv4 pseudo-header sum for a TCP or UDP checksum (RFC 9293 §3.1, RFC 768). */
export function pseudoHeaderSum(
  src: number,
  dst: number,
  protocol: number,
  length: number,
): number {
  return (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + protocol + length;
}
