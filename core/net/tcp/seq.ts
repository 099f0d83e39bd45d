/** Sequence-number arithmetic modulo 2^32 (RFC 9293 §3.4). */

/** a < b */
export const seqLt = (a: number, b: number): boolean => ((a - b) | 0) < 0;
/** a ≤ b */
export const seqLe = (a: number, b: number): boolean => ((a - b) | 0) <= 0;
/** a > b */
export const seqGt = (a: number, b: number): boolean => ((a - b) | 0) > 0;
/** a + n, wrapped */
export const seqAdd = (a: number, n: number): number => (a + n) >>> 0;
/** b − a as a signed distance */
export const seqDiff = (b: number, a: number): number => (b - a) | 0;
