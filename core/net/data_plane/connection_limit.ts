/**
 * The most connections the TUN relays at once (`--max-connections`). Each costs k8stun memory (its
 * stack state, its relay, a port-forward stream) and the API server a stream, so a local program
 * opening connections as fast as it can — any user can — must not be able to grow a root process
 * without bound. Past the limit a new connection is refused (the app sees ECONNREFUSED, or a reset
 * when it was connected early: docs/tcp.md §3.1) until some close. The log says so once when the
 * limit is reached and once when the count is well below it again, not once per connection.
 */
import { logger } from "../../log.ts";

const log = logger("tun");
/** Below this share of the limit, a limited episode is over (and logged as over). */
const RECOVERED_SHARE = 0.9;

export class ConnectionLimit {
  #limited = false;
  #refused = 0;

  constructor(readonly max: number) {}

  /** Whether one more connection may open, with `open` open now (refusals are counted). */
  admits(open: number): boolean {
    if (open < this.max) {
      if (this.#limited && open < this.max * RECOVERED_SHARE) {
        log.info(
          "{open} connections through the TUN: new ones are taken again ({refused} refused meanwhile)",
          {
            open,
            refused: this.#refused,
          },
        );
        this.#limited = false;
        this.#refused = 0;
      }
      return true;
    }
    if (!this.#limited) {
      log.warn(
        "{open} connections through the TUN, the most allowed (--max-connections): new ones are " +
          "refused until some close",
        { open },
      );
      this.#limited = true;
    }
    this.#refused++;
    return false;
  }
}
