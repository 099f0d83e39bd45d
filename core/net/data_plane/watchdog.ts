/**
 * Tells a stalled packet loop from an idle one. The loop bumps its heartbeat word at every turn,
 * and an idle loop still turns when its `poll` times out (at most every second, worker.ts): a
 * heartbeat that has not moved for several seconds means the loop is stuck — spinning in a bug,
 * or blocked — while connections wait on it.
 */

/** How the loop is doing, as the main thread sees it. */
export type LoopState = "up" | "stalled" | "down";

/** The heartbeat's history: when it last moved. */
export class Watchdog {
  #heartbeat: number | undefined;
  #movedAt: number;

  /** @param stalledAfterMs a heartbeat still for this long is a stall. */
  constructor(readonly stalledAfterMs: number, now: number) {
    this.#movedAt = now;
  }

  /** Takes the heartbeat read at `now`; returns for how long it has not moved (ms). */
  observe(heartbeat: number, now: number): number {
    if (heartbeat !== this.#heartbeat) {
      this.#heartbeat = heartbeat;
      this.#movedAt = now;
    }
    return now - this.#movedAt;
  }

  /** Whether a loop whose heartbeat has been still for `stillMs` is stalled. */
  stalled(stillMs: number): boolean {
    return stillMs >= this.stalledAfterMs;
  }
}
