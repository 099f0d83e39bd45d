/**
 * The most connections the TUN relays at once (`--max-connections`). Each costs k8stun memory (its
 * stack state, its relay, a port-forward stream) and the API server a stream, so a local program
 * opening connections as fast as it can — any user can — must not be able to grow a root process
 * without bound. Past the limit a new connection is refused (the app sees ECONNREFUSED, or a reset
 * when it was connected early: docs/tcp.md §3.1) until some close. The log says so once when the
 * limit is reached and once when the count is well below it again, not once per connection.
 *
 * A connection may also cost up to two descriptors (a direct or SOCKS dial; the simulated cluster's
 * pod connection in the demo), so the default fits in {@link TUN_DESCRIPTOR_SHARE} of the
 * process's descriptor limit (core/descriptor_limit.ts).
 */
import { logger } from "../../log.ts";
import { fitToDescriptors, openFileLimit } from "../../descriptor_limit.ts";

const log = logger("tun");
/** Connections relayed at once by default (`--max-connections`), descriptors permitting. */
export const DEFAULT_MAX_CONNECTIONS = 4096;
/** The share of the descriptor limit the TUN's connections may take by default. */
export const TUN_DESCRIPTOR_SHARE = 3 / 8;
/** Descriptors one connection through the TUN may cost. */
const DESCRIPTORS_EACH = 2;
/** Below this share of the limit, a limited episode is over (and logged as over). */
const RECOVERED_SHARE = 0.9;

export class ConnectionLimit {
  #limited = false;
  #refused = 0;

  constructor(readonly max: number) {}

  /**
   * The limit asked for (`--max-connections`), or by default as many as fit the descriptor
   * limit, up to {@link DEFAULT_MAX_CONNECTIONS}. An asked-for limit past that fit is kept, with
   * a warning: the process may then run out of descriptors before it refuses a connection.
   */
  static fitted(asked: number | undefined, limit = openFileLimit()): ConnectionLimit {
    const fit = fitToDescriptors(
      DEFAULT_MAX_CONNECTIONS,
      DESCRIPTORS_EACH,
      TUN_DESCRIPTOR_SHARE,
      limit,
    );
    if (asked === undefined) return new ConnectionLimit(fit);
    if (limit !== undefined && asked * DESCRIPTORS_EACH > limit) {
      log.warn(
        "--max-connections {asked} may take up to {needed} descriptors, more than this process may open ({limit}, ulimit -n): k8stun may fail before it refuses a connection",
        { asked, needed: asked * DESCRIPTORS_EACH, limit },
      );
    }
    return new ConnectionLimit(asked);
  }

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
