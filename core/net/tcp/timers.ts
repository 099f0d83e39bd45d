/**
 * The deadlines of one TCP connection, in one place: the stack's timer heap (timer_queue.ts)
 * holds one entry per connection, at {@link ConnectionTimers.next}, and the connection asks
 * which of its timers came due.
 */

/**
 * - `retransmit`: data, FIN or SYN-ACK unacknowledged (RFC 6298; docs/tcp.md §3.2, §5.2).
 * - `probe`: tail loss probe, data in flight and no ACK progress (RFC 8985 §7; docs/tcp.md §5.3).
 * - `persist`: zero window with data waiting (RFC 9293 §3.8.6.1; docs/tcp.md §5.4).
 * - `close`: TIME-WAIT, or the bound on FIN-WAIT-2 (docs/tcp.md §6.3, §6.8).
 * - `idle`: the idle timeout, then the grace an idle-closed app has to close (docs/tcp.md §6.8).
 */
export type TimerKind = "retransmit" | "probe" | "persist" | "close" | "idle";

/**
 * Absolute deadlines in ms; 0 means the timer is off. One object per connection, its fields
 * named by {@link TimerKind} (no record inside it: 10,000 idle connections each carry one).
 */
export class ConnectionTimers {
  retransmit = 0;
  probe = 0;
  persist = 0;
  close = 0;
  idle = 0;

  /** Sets `kind` to fire at `at` (0 cancels it). */
  arm(kind: TimerKind, at: number): void {
    this[kind] = at;
  }

  cancel(kind: TimerKind): void {
    this[kind] = 0;
  }

  isArmed(kind: TimerKind): boolean {
    return this[kind] !== 0;
  }

  /** Whether `kind` is armed and its deadline has passed. */
  isDue(kind: TimerKind, now: number): boolean {
    const at = this[kind];
    return at !== 0 && now >= at;
  }

  /** The earliest deadline of any timer, or 0 when none is armed. */
  next(): number {
    return earliest(
      earliest(earliest(this.retransmit, this.probe), earliest(this.persist, this.close)),
      this.idle,
    );
  }
}

/** The earlier of two deadlines, where 0 (off) is never earlier. */
function earliest(a: number, b: number): number {
  return a === 0 ? b : b === 0 ? a : Math.min(a, b);
}
