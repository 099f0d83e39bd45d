/**
 * Connections to the SOCKS proxy opened ahead of need. An early dial (DialOptions.early) that
 * finds one sends its request at once: the TCP handshake with the proxy is off the app's path,
 * the way a browser preconnects. Each dial that takes a spare opens its replacement, a dial that
 * finds none opens one more (up to {@link MAX_SPARES}): the pool follows the concurrency of
 * connection bursts. A spare unused for {@link SPARE_MAX_AGE_MS} is closed — proxies time out
 * connections that stay silent, and an idle tunnel holds none.
 */

/** The most connections kept open ahead. */
export const MAX_SPARES = 8;
/** A spare older than this is closed instead of used. */
export const SPARE_MAX_AGE_MS = 2000;

interface Spare {
  conn: Deno.Conn;
  openedAt: number;
}

/** Spare connections from `open`. */
export class Spares {
  readonly #open: () => Promise<Deno.Conn>;
  readonly #ready: Spare[] = [];
  #opening = 0;
  #sweep: ReturnType<typeof setTimeout> | undefined;
  #closed = false;

  constructor(open: () => Promise<Deno.Conn>) {
    this.#open = open;
  }

  /**
   * A connection opened ahead, or undefined; either way the pool refills, in a later task: on
   * loopback a connect runs the whole TCP handshake inside the call, which the dial that asks
   * should not wait for.
   */
  take(): Deno.Conn | undefined {
    this.#expire();
    const spare = this.#ready.pop(); // the freshest
    setTimeout(() => this.#refill(spare ? 1 : 2), 0);
    return spare?.conn;
  }

  /** Closes every spare; no more are opened. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#sweep);
    for (const spare of this.#ready.splice(0)) closeQuietly(spare.conn);
  }

  #refill(count: number): void {
    for (let i = 0; i < count; i++) {
      if (this.#closed || this.#ready.length + this.#opening >= MAX_SPARES) return;
      this.#opening++;
      this.#open().then((conn) => {
        this.#opening--;
        if (this.#closed) return closeQuietly(conn);
        this.#ready.push({ conn, openedAt: performance.now() });
        this.#scheduleSweep();
      }, () => {
        this.#opening--; // the next dial connects itself and reports the failure
      });
    }
  }

  /** Closes spares past their age. */
  #expire(): void {
    const oldest = performance.now() - SPARE_MAX_AGE_MS;
    while (this.#ready.length > 0 && this.#ready[0].openedAt < oldest) {
      closeQuietly(this.#ready.shift()!.conn);
    }
  }

  /** One timer while spares wait, so an idle tunnel lets them go; it keeps no process alive. */
  #scheduleSweep(): void {
    if (this.#sweep !== undefined) return;
    this.#sweep = setTimeout(() => {
      this.#sweep = undefined;
      this.#expire();
      if (this.#ready.length > 0) this.#scheduleSweep();
    }, SPARE_MAX_AGE_MS);
    Deno.unrefTimer(this.#sweep);
  }
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // closed already
  }
}
