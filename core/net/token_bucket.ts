/**
 * A token bucket: at most `burst` at once, refilled at `perSecond`. The stack takes one per ICMP
 * error it sends, as routers and hosts limit them (RFC 1812 §4.3.2.8; Linux allows 1,000 a second
 * in bursts of 50): a flood of datagrams to closed ports then costs a bounded number of replies.
 */
export class TokenBucket {
  #tokens: number;
  #at: number | undefined;

  constructor(readonly perSecond: number, readonly burst: number) {
    this.#tokens = burst;
  }

  /** Takes a token at `now` (ms); false when none is left. */
  take(now: number): boolean {
    if (this.#at !== undefined) {
      const refill = Math.max(0, now - this.#at) * this.perSecond / 1000;
      this.#tokens = Math.min(this.burst, this.#tokens + refill);
    }
    this.#at = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}
