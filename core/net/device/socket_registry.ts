/**
 * The sockets a packet loop holds, as bits in shared memory (one per descriptor number): set once
 * a socket is open, cleared before it is closed. A loop that ends normally closes its sockets
 * itself; one that is terminated (the watchdog stops a loop that no longer takes turns) cannot,
 * and its owner closes what is still set. That order makes a set bit always name a socket the
 * loop still owns, never a number the process has reused since.
 */

/** Descriptors above this are not recorded (a process with over a million open files). */
export const MAX_TRACKED_FD = 1 << 20;

export class SocketRegistry {
  readonly buffer: SharedArrayBuffer;
  readonly #words: Int32Array;

  constructor(buffer = new SharedArrayBuffer(MAX_TRACKED_FD / 8)) {
    this.buffer = buffer;
    this.#words = new Int32Array(buffer);
  }

  /** `fd` is open and the loop's. */
  add(fd: number): void {
    if (fd >= 0 && fd < MAX_TRACKED_FD) Atomics.or(this.#words, fd >>> 5, 1 << (fd & 31));
  }

  /** `fd` is about to be closed by the loop. */
  remove(fd: number): void {
    if (fd >= 0 && fd < MAX_TRACKED_FD) Atomics.and(this.#words, fd >>> 5, ~(1 << (fd & 31)));
  }

  /** Visits and clears every descriptor still recorded (the loop is gone). */
  drain(visit: (fd: number) => void): void {
    for (let word = 0; word < this.#words.length; word++) {
      let bits = Atomics.exchange(this.#words, word, 0);
      while (bits !== 0) {
        const bit = 31 - Math.clz32(bits);
        bits &= ~(1 << bit);
        visit(word * 32 + bit);
      }
    }
  }
}
