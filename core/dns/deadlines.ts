/**
 * Many deadlines on one timer. Every forwarded query has a deadline per try and a moment for its
 * next try, and a timer each cost more than the rest of the forwarding (a `setTimeout` and its
 * `clearTimeout` measured ~5 µs and most of the garbage collection per query). The deadlines come
 * in a few durations (resolv.conf's timeout and its multiples), and within one duration they
 * expire in the order they were set: one first-in-first-out queue per duration, and one timer
 * for the earliest head. A cancelled deadline is only marked; the queue drops it when it reaches
 * the head, or sooner when the cancelled ones outnumber the rest, so memory follows the deadlines
 * still pending.
 */

/** A pending deadline. */
export interface Deadline {
  /** Stops it from firing (no effect once it fired). */
  cancel(): void;
}

class Entry implements Deadline {
  constructor(readonly at: number, public fire: (() => void) | undefined, readonly queue: Queue) {}

  cancel(): void {
    if (this.fire === undefined) return;
    this.fire = undefined;
    this.queue.cancelled++;
    this.queue.owner.settled();
  }
}

/** The deadlines of one duration, in expiry order. */
class Queue {
  constructor(readonly owner: { settled(): void }) {}

  entries: Entry[] = [];
  head = 0;
  cancelled = 0;

  /** Drops cancelled entries at the head; the first live one, if any. */
  first(): Entry | undefined {
    while (this.head < this.entries.length && this.entries[this.head].fire === undefined) {
      this.head++;
      this.cancelled--;
    }
    this.#compact();
    return this.entries[this.head];
  }

  #compact(): void {
    if (this.head === this.entries.length) {
      this.entries = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
    if (this.cancelled > 1024 && this.cancelled * 2 > this.entries.length - this.head) {
      this.entries = this.entries.slice(this.head).filter((entry) => entry.fire !== undefined);
      this.head = 0;
      this.cancelled = 0;
    }
  }
}

/** Deadlines sharing one timer. */
export class DeadlineQueue {
  readonly #queues = new Map<number, Queue>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerAt = Infinity;
  #pending = 0;
  readonly #owner = { settled: () => this.#settled() };

  /** @param now the clock (milliseconds), replaceable for tests. */
  constructor(readonly now: () => number = () => performance.now()) {}

  /** Deadlines set and neither fired nor cancelled. */
  get pending(): number {
    return this.#pending;
  }

  /** Calls `fire` in `ms` milliseconds unless cancelled first. */
  add(ms: number, fire: () => void): Deadline {
    let queue = this.#queues.get(ms);
    if (!queue) this.#queues.set(ms, queue = new Queue(this.#owner));
    this.#pending++;
    const entry = new Entry(this.now() + ms, fire, queue);
    queue.entries.push(entry);
    if (entry.at < this.#timerAt) this.#arm(entry.at);
    else queue.first(); // keeps cancelled entries from piling up behind a live head
    return entry;
  }

  /** Cancels every pending deadline. */
  clear(): void {
    for (const queue of this.#queues.values()) {
      for (const entry of queue.entries) entry.fire = undefined; // a later cancel counts nothing
    }
    this.#queues.clear();
    this.#pending = 0;
    this.#disarm();
  }

  /** One fired or was cancelled: with none left, no timer is kept (nor the process alive). */
  #settled(): void {
    if (--this.#pending > 0) return;
    this.#queues.clear();
    this.#disarm();
  }

  #disarm(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Infinity;
  }

  #arm(at: number): void {
    clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = setTimeout(() => this.#expire(), Math.max(0, at - this.now()));
  }

  #expire(): void {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    const now = this.now();
    // Earliest first across the durations (a late timer finds several due): a few queues only.
    while (true) {
      let earliest: Entry | undefined;
      for (const [ms, queue] of this.#queues) {
        const first = queue.first();
        if (!first) this.#queues.delete(ms);
        else if (!earliest || first.at < earliest.at) earliest = first;
      }
      if (!earliest) return;
      if (earliest.at > now) {
        if (earliest.at < this.#timerAt) this.#arm(earliest.at);
        return;
      }
      const fire = earliest.fire!;
      earliest.cancel();
      fire(); // may add deadlines or cancel others
    }
  }
}
