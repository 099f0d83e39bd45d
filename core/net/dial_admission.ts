/**
 * How many dials SYNs may hold at once. A connection in SYN-RECEIVED holds a dial (in progress,
 * or done and waiting for the app's final ACK), so spoofed SYNs could make the stack dial without
 * limit (RFC 4987 §3). Past the limits, in total or for one source address, the stack answers
 * with SYN cookies instead (RFC 4987 §3.6, tcp/syn_cookie.ts), and a connection a cookie opens is
 * dialed only once its handshake completed. Those dials, and the ones of connections answered
 * before their dial (accepting_destinations.ts), are of connections the app believes established:
 * they have a bound of their own, apart from the half-open ones, so the handshakes a flood leaves
 * waiting cannot keep a real client from its dial.
 */

/** Default total of half-open connections. */
export const DEFAULT_MAX_HALF_OPEN = 512;
/**
 * Default share of one source address: the same as the total. Only this host's own addresses
 * are served, so every app on the laptop shares one or two sources, and a lower share would send
 * an ordinary burst of connections (a browser, a connection pool) down the SYN-cookie path, whose
 * connections have no window scaling. A host that serves others sets it lower.
 */
export const DEFAULT_MAX_HALF_OPEN_PER_SOURCE = DEFAULT_MAX_HALF_OPEN;

/** The connections counted, by the only thing the limits look at: their source address. */
interface Counted {
  readonly remote: { readonly address: number };
}

/** The half-open and cookie-dial slots of one stack. */
export class DialAdmission<C extends Counted> {
  readonly #halfOpen = new Set<C>();
  readonly #halfOpenBySource = new Map<number, number>();
  /** Connections the app believes established whose dial has not answered. */
  readonly #answeredDials = new Set<C>();
  readonly #max: number;
  readonly #maxPerSource: number;

  constructor(max = DEFAULT_MAX_HALF_OPEN, maxPerSource = DEFAULT_MAX_HALF_OPEN_PER_SOURCE) {
    this.#max = max;
    this.#maxPerSource = maxPerSource;
  }

  /** Whether a new SYN from `source` fits under the limits (total and per source). */
  admitsSyn(source: number): boolean {
    return this.#halfOpen.size < this.#max &&
      (this.#halfOpenBySource.get(source) ?? 0) < this.#maxPerSource;
  }

  /** A SYN within the limits created `conn`: it holds a slot until its handshake completes. */
  enterHalfOpen(conn: C): void {
    this.#halfOpen.add(conn);
    const source = conn.remote.address;
    this.#halfOpenBySource.set(source, (this.#halfOpenBySource.get(source) ?? 0) + 1);
  }

  /** The handshake completed or the connection is gone: its half-open slot frees up. */
  leaveHalfOpen(conn: C): void {
    if (!this.#halfOpen.delete(conn)) return;
    const source = conn.remote.address;
    const left = (this.#halfOpenBySource.get(source) ?? 1) - 1;
    if (left > 0) this.#halfOpenBySource.set(source, left);
    else this.#halfOpenBySource.delete(source);
  }

  /**
   * Whether one more connection may be answered before its dial: opened from a cookie, or a SYN
   * to a destination that accepted recently.
   */
  admitsAnsweredDial(): boolean {
    return this.#answeredDials.size < this.#max;
  }

  /** `conn` got its SYN-ACK before its dial answered: it holds a dial until accepted or gone. */
  enterAnsweredDial(conn: C): void {
    this.#answeredDials.add(conn);
  }

  /** The dial of `conn` completed. */
  dialDone(conn: C): void {
    this.#answeredDials.delete(conn);
  }

  /** `conn` is gone: whatever slot it held frees up. */
  forget(conn: C): void {
    this.leaveHalfOpen(conn);
    this.#answeredDials.delete(conn);
  }
}
