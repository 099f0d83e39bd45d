/**
 * The stack's timers: a binary min-heap of (deadline, owner) entries with lazy deletion, so a
 * loop turn costs O(log n) per connection that changed or came due instead of a scan of every
 * connection (10,000 idle ones, or thousands in TIME_WAIT during a burst of short connections).
 *
 * An owner has at most one live entry: rescheduling to an earlier deadline supersedes the old
 * entry (skipped when it surfaces); to a later one, the old entry is kept and fires early, and
 * the owner is simply rescheduled then. A timer that moved later — the retransmission timer on
 * every ACK — thus costs nothing until its old deadline.
 */

interface Entry<T> {
  at: number;
  owner: T;
}

/** A set of timers keyed by their owners. */
export class TimerQueue<T extends object> {
  readonly #heap: Entry<T>[] = [];
  /** The deadline of each owner's live entry. */
  readonly #live = new WeakMap<T, number>();

  /** Makes sure `owner` is visited by {@link popDue} at `at` or earlier (0 = no timer). */
  schedule(owner: T, at: number): void {
    if (at === 0) return;
    const live = this.#live.get(owner);
    if (live !== undefined && live <= at) return;
    this.#live.set(owner, at);
    this.#push({ at, owner });
  }

  /** Removes and returns each owner whose live entry is due at `now`, earliest first. */
  popDue(now: number, visit: (owner: T) => void): void {
    while (this.#heap.length > 0 && this.#heap[0].at <= now) {
      const entry = this.#pop();
      if (this.#live.get(entry.owner) !== entry.at) continue; // superseded
      this.#live.delete(entry.owner);
      visit(entry.owner);
    }
  }

  /** The earliest deadline held (possibly of a superseded entry: an early wake is harmless). */
  next(): number | undefined {
    return this.#heap[0]?.at;
  }

  get size(): number {
    return this.#heap.length;
  }

  #push(entry: Entry<T>): void {
    const heap = this.#heap;
    heap.push(entry);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (heap[parent].at <= entry.at) break;
      heap[i] = heap[parent];
      i = parent;
    }
    heap[i] = entry;
  }

  #pop(): Entry<T> {
    const heap = this.#heap;
    const top = heap[0];
    const last = heap.pop()!;
    if (heap.length > 0) {
      let i = 0;
      for (;;) {
        const left = 2 * i + 1;
        if (left >= heap.length) break;
        const right = left + 1;
        const child = right < heap.length && heap[right].at < heap[left].at ? right : left;
        if (heap[child].at >= last.at) break;
        heap[i] = heap[child];
        i = child;
      }
      heap[i] = last;
    }
    return top;
  }
}
