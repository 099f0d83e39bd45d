/**
 * How long a port-forward waits for the kubelet's answer to a new connection (the SYN_REPLYs of
 * SPDY, the port prefixes of v4; docs/portforward.md §5, §8, §9) before failing it as a timeout.
 *
 * A timer alone cannot tell "the kubelet did not answer" from "the answer is here but unread":
 * when this thread is busy — a DNS flood, a burst of connections, a loaded laptop — the reply may
 * sit in the socket while the timer fires on time. So when the limit passes, the connection is
 * asked first: a ping goes out on it, and its echo comes back behind anything sent before it
 * (one connection, read in order). An echo read while the answer is still missing means the
 * answer really is late; only then does the deadline expire. No echo within another limit means
 * the link itself is gone, and the deadline expires too.
 */

/** See the module comment. */
export class ReplyDeadline {
  #timer: ReturnType<typeof setTimeout> | undefined;
  #done = false;

  /**
   * Starts the deadline. `ping` sends a ping on the connection the answer comes by and resolves
   * once its echo was read; `expired` is called at most once, never after {@link cancel}.
   */
  constructor(
    readonly limitMs: number,
    ping: () => Promise<void>,
    expired: () => void,
  ) {
    const expire = () => {
      if (this.#done) return;
      this.#done = true;
      clearTimeout(this.#timer);
      expired();
    };
    this.#timer = setTimeout(() => {
      if (this.#done) return;
      this.#timer = setTimeout(expire, limitMs);
      // A ping that cannot be sent (the connection is closing) expires the deadline too.
      new Promise<void>((resolve) => resolve(ping())).then(expire, expire);
    }, limitMs);
  }

  /** The answer came (or the connection ended otherwise): the deadline is over. */
  cancel(): void {
    this.#done = true;
    clearTimeout(this.#timer);
  }
}
