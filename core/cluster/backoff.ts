/**
 * Retry delays for list and watch requests, shaped like client-go's reflector: 0.8 s doubling to
 * 30 s, each delay jittered, and back to the start once requests have succeeded for a while. A
 * stopped API server then costs a request every 30 s per resource, not hundreds a second.
 */

/** Tuning of a {@link Backoff}. */
export interface BackoffOptions {
  initialMs?: number;
  maxMs?: number;
  /** Succeeding this long after the last failure starts the next failure at `initialMs`. */
  resetAfterMs?: number;
  /** Fraction of each delay that is random (0: exact delays). */
  jitter?: number;
  random?: () => number;
  now?: () => number;
}

/** Exponential backoff with jitter. */
export class Backoff {
  readonly #initialMs: number;
  readonly #maxMs: number;
  readonly #resetAfterMs: number;
  readonly #jitter: number;
  readonly #random: () => number;
  readonly #now: () => number;
  #nextMs: number;
  #lastFailureAt = -Infinity;

  constructor(options: BackoffOptions = {}) {
    this.#initialMs = options.initialMs ?? 800;
    this.#maxMs = options.maxMs ?? 30_000;
    this.#resetAfterMs = options.resetAfterMs ?? 120_000;
    this.#jitter = options.jitter ?? 0.5;
    this.#random = options.random ?? Math.random;
    this.#now = options.now ?? Date.now;
    this.#nextMs = this.#initialMs;
  }

  /** The delay before the next attempt after a failure; each call doubles the following one. */
  next(): number {
    const now = this.#now();
    if (now - this.#lastFailureAt > this.#resetAfterMs) this.#nextMs = this.#initialMs;
    this.#lastFailureAt = now;
    const base = this.#nextMs;
    this.#nextMs = Math.min(this.#nextMs * 2, this.#maxMs);
    return base * (1 - this.#jitter) + base * this.#jitter * this.#random();
  }

  /** Forgets past failures (the server answered again). */
  reset(): void {
    this.#nextMs = this.#initialMs;
    this.#lastFailureAt = -Infinity;
  }
}
