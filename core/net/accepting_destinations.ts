/**
 * The destinations (address and port) whose last dial succeeded within a while: the stack answers
 * a new SYN to one of them at once, before its dial (docs/tcp.md §3.1). An app that opens
 * connection after connection to the same service — a connection pool, a browser, a health
 * check — then never waits for the relay's round trip in `connect()`. A failed dial forgets the
 * destination, so only the first connection after a target went away sees "connected, then reset"
 * instead of "refused"; the next one is dialed first again.
 */

/** How long a successful dial vouches for its destination. */
export const DEFAULT_ACCEPTING_MEMORY_MS = 30_000;
/** The most destinations remembered; the least recently confirmed one goes first. */
const CAPACITY = 4096;

export class AcceptingDestinations {
  /** Destination key (address · 2¹⁶ + port, exact in a double) → when it stops counting. */
  readonly #until = new Map<number, number>();
  readonly #memoryMs: number;

  /** `memoryMs` 0 remembers nothing: every SYN waits for its dial. */
  constructor(memoryMs = DEFAULT_ACCEPTING_MEMORY_MS) {
    this.#memoryMs = memoryMs;
  }

  /** Whether a dial to `address:port` succeeded within the memory. */
  has(address: number, port: number, now: number): boolean {
    const key = address * 0x10000 + port;
    const until = this.#until.get(key);
    if (until === undefined) return false;
    if (until > now) return true;
    this.#until.delete(key);
    return false;
  }

  /** A dial to `address:port` succeeded. */
  accepted(address: number, port: number, now: number): void {
    if (this.#memoryMs <= 0) return;
    const key = address * 0x10000 + port;
    // Re-inserted, so the map's order is the order of confirmation: the oldest goes first.
    this.#until.delete(key);
    this.#until.set(key, now + this.#memoryMs);
    if (this.#until.size > CAPACITY) this.#until.delete(this.#until.keys().next().value!);
  }

  /** A dial to `address:port` failed: its next connection is dialed first. */
  refused(address: number, port: number): void {
    this.#until.delete(address * 0x10000 + port);
  }

  get size(): number {
    return this.#until.size;
  }
}
