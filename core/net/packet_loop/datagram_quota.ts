/**
 * How many datagrams the packet loop lets wait for the main thread at once. A UDP datagram is the
 * one event the loop may drop (UDP promises no delivery), and the one a local program can make
 * the loop produce faster than the main thread answers it: a flood of datagrams to a served port
 * (k8stun's DNS) would otherwise fill the events ring, and then the loop's backlog behind it
 * without bound, and the connections' events would wait behind them. So at most `limit` datagram
 * events are in the ring unread; past that a datagram is dropped and counted. A DNS client's
 * load (tens of queries in flight) never comes near it.
 */
export class DatagramQuota {
  /** The ring's write position just past each datagram event not known to be read, oldest first. */
  #ends: number[] = [];
  #first = 0;

  constructor(readonly limit: number) {}

  /**
   * Whether one more datagram may go into the ring, now that the main thread has read `consumed`
   * bytes of it (a free-running u32 count, as the ring keeps it).
   */
  admits(consumed: number): boolean {
    const ends = this.#ends;
    while (this.#first < ends.length && ((consumed - ends[this.#first]) | 0) >= 0) this.#first++;
    if (this.#first === ends.length) {
      this.#ends = [];
      this.#first = 0;
    } else if (this.#first > 1024) {
      this.#ends = ends.slice(this.#first);
      this.#first = 0;
    }
    return this.#ends.length - this.#first < this.limit;
  }

  /** A datagram event went into the ring, which had then been written up to `written` bytes. */
  published(written: number): void {
    this.#ends.push(written);
  }

  /** Datagram events in the ring that may not have been read yet. */
  get waiting(): number {
    return this.#ends.length - this.#first;
  }
}
