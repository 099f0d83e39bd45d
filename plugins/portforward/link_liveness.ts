/**
 * Liveness of a link to the API server (a SPDY session's WebSocket, or one v4 WebSocket): the
 * state machine that decides when to send a keepalive PING, when a silent link is dead, and when
 * the machine was suspended so the link is suspect. The transport owns the I/O: it reports what
 * it heard and sends the PINGs this asks for.
 *
 * - Keepalive: a link silent for `keepaliveMs` is pinged (SPDY/3.1 §2.6.5 PING, or a WebSocket
 *   ping, RFC 6455 §5.5.2). The reply and the PING keep the TCP connection busy, so a proxy or
 *   NAT that drops connections idle for minutes never sees it idle.
 * - Dead: nothing heard for `deadAfterMs` although pinged (a black-holed route, a peer gone
 *   without a FIN or RST) — TCP alone would retransmit for about 15 minutes.
 * - Suspended: a tick that runs much later than scheduled, or a wall clock that moved much further
 *   than the monotonic one (Linux's CLOCK_MONOTONIC stops during suspend), means the laptop slept:
 *   NAT state and the server's side of the connection may be gone. The link is then suspect
 *   (callers open new links for new work) and pinged; silence for `deadAfterMs` after that ends
 *   it.
 * - While the transport has paused reading (backpressure: the app does not read), replies cannot
 *   be heard, so silence is not counted; the sender was heard from just before.
 */

/** Intervals; defaults suit real clusters, tests compress them. */
export interface LivenessOptions {
  /** Ping a link silent this long (default 5 s). */
  keepaliveMs?: number;
  /** A link silent this long although pinged is dead (default 15 s). */
  deadAfterMs?: number;
  /** A tick this late, or a wall/monotonic clock divergence this large, means a suspend (10 s). */
  suspendGapMs?: number;
  /** Clocks (injectable so tests can simulate a suspend). */
  clock?: LivenessClock;
}

/** The two clocks compared to notice a suspend. */
export interface LivenessClock {
  /** Milliseconds, monotonic (does not advance while the machine sleeps on Linux). */
  monotonic(): number;
  /** Milliseconds since the epoch (jumps forward across a sleep). */
  wall(): number;
}

/** What the link does on the state machine's behalf. */
export interface LivenessLink {
  /** Send a keepalive or probe PING. */
  ping(): void;
  /** The link was silent for `silentMs` although pinged: end it and fail its users. */
  dead(silentMs: number): void;
  /** The machine was (probably) suspended for about `gapMs`: stop reusing the link. */
  suspended?(gapMs: number): void;
  /** Reading is paused for backpressure: replies cannot arrive. */
  paused(): boolean;
}

export const DEFAULT_KEEPALIVE_MS = 5_000;
export const DEFAULT_DEAD_AFTER_MS = 15_000;
export const DEFAULT_SUSPEND_GAP_MS = 10_000;

const SYSTEM_CLOCK: LivenessClock = { monotonic: () => performance.now(), wall: () => Date.now() };

/** Runs the state machine on a timer until {@link stop}. */
export class LinkLiveness {
  readonly #link: LivenessLink;
  readonly #clock: LivenessClock;
  readonly #keepaliveMs: number;
  readonly #deadAfterMs: number;
  readonly #suspendGapMs: number;
  readonly #tickMs: number;
  readonly #timer: ReturnType<typeof setInterval>;
  #lastHeard: number;
  #lastPing = -Infinity;
  #lastTickMonotonic: number;
  #lastTickWall: number;
  /** A probe asked for a verdict sooner than `deadAfterMs` (monotonic deadline). */
  #probeDeadline = Infinity;
  #stopped = false;

  constructor(link: LivenessLink, options: LivenessOptions = {}) {
    this.#link = link;
    this.#clock = options.clock ?? SYSTEM_CLOCK;
    this.#keepaliveMs = options.keepaliveMs ?? DEFAULT_KEEPALIVE_MS;
    this.#deadAfterMs = Math.max(options.deadAfterMs ?? DEFAULT_DEAD_AFTER_MS, this.#keepaliveMs);
    this.#suspendGapMs = options.suspendGapMs ?? DEFAULT_SUSPEND_GAP_MS;
    // Fine enough that "dead" is declared within a fifth of a keepalive of its deadline.
    this.#tickMs = Math.max(10, Math.min(1_000, this.#keepaliveMs / 5));
    this.#lastHeard = this.#lastTickMonotonic = this.#clock.monotonic();
    this.#lastTickWall = this.#clock.wall();
    this.#timer = setInterval(() => this.tick(), this.#tickMs);
  }

  /** Bytes (any frame, a PING reply, a pong) arrived from the peer. */
  heard(): void {
    this.#lastHeard = this.#clock.monotonic();
    this.#probeDeadline = Infinity;
  }

  /**
   * Asks now whether the link is alive: pings at once and declares it dead unless something
   * arrives within `timeoutMs` (e.g. a stream the far side did not answer).
   */
  probe(timeoutMs: number): void {
    if (this.#stopped) return;
    const now = this.#clock.monotonic();
    this.#probeDeadline = Math.min(this.#probeDeadline, now + timeoutMs);
    this.#ping(now);
  }

  /** One step of the state machine (run by the timer; public for tests). */
  tick(): void {
    if (this.#stopped) return;
    const now = this.#clock.monotonic();
    const wall = this.#clock.wall();
    const late = now - this.#lastTickMonotonic - this.#tickMs;
    const jump = (wall - this.#lastTickWall) - (now - this.#lastTickMonotonic);
    this.#lastTickMonotonic = now;
    this.#lastTickWall = wall;
    if (late > this.#suspendGapMs || jump > this.#suspendGapMs) {
      // The silence before the suspend says nothing about the link now: judge it afresh.
      this.#lastHeard = now;
      this.#probeDeadline = Infinity;
      this.#link.suspended?.(Math.max(late, jump));
      if (this.#stopped) return;
      this.#ping(now);
      return;
    }
    if (this.#link.paused()) {
      this.#lastHeard = now;
      this.#probeDeadline = Infinity;
      return;
    }
    const silent = now - this.#lastHeard;
    if (silent >= this.#deadAfterMs || now >= this.#probeDeadline) {
      this.stop();
      this.#link.dead(silent);
      return;
    }
    if (silent >= this.#keepaliveMs && now - this.#lastPing >= this.#keepaliveMs) this.#ping(now);
  }

  #ping(now: number): void {
    this.#lastPing = now;
    this.#link.ping();
  }

  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
  }
}
