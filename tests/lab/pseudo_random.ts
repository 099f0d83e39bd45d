/**
 * Reproducible pseudo-random choices for fuzz tests (xorshift32): `random(n)` is in [0, n), and a
 * failing seed reproduces its run.
 */
export function seededRandom(seed: number): (n: number) => number {
  let x = seed >>> 0 || 1;
  return (n) => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % n;
  };
}

/**
 * A shell pipeline printing `bytes` reproducible pseudo-random bytes on stdout (AES-128-CTR of
 * zeros under a fixed key): the same stream on every run, so a sender and a checker can each make
 * it, and no pattern a relay could get right by accident.
 */
export function pseudoRandomBytes(bytes: number): string {
  return "openssl enc -aes-128-ctr -K 000102030405060708090a0b0c0d0e0f " +
    `-iv 00000000000000000000000000000000 -nosalt < /dev/zero 2>/dev/null | head -c ${bytes}`;
}
