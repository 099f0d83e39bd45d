/**
 * A TCP accept loop that hostile or careless clients cannot stop or fill, shared by the SOCKS5
 * and HTTP proxy listeners and DNS over TCP:
 *
 * - a failing `accept` (EMFILE/ENFILE: the process or the system is out of descriptors) is logged
 *   once and retried with a short backoff, so the listener serves again once descriptors free up
 *   (the pending connections wait in the kernel's backlog meanwhile);
 * - open connections are capped per source address and in total; excess ones are closed at once,
 *   which costs one descriptor for a moment;
 * - a connection must finish its handshake (what the protocol needs before it can be served: the
 *   SOCKS5 negotiation, an HTTP request head, a first DNS query) by a deadline, and only a few per
 *   source may be in their handshake at a time, so one client cannot take every slot before it
 *   authenticates (the slowloris pattern);
 * - optionally an idle timeout after the handshake (RFC 7766 §6.2.3 asks DNS servers to time out
 *   idle TCP connections after seconds).
 *
 * Each connection is closed when its handler settles, when a deadline passes, or when the
 * listener closes. The loop itself holds no state beyond the counts of open connections.
 */
import { logger } from "./log.ts";
import { fitToDescriptors, openFileLimit } from "./descriptor_limit.ts";

/** Limits of a {@link GuardedListener}. */
export interface ListenerLimits {
  /**
   * Open connections in all (excess: closed at once); fewer when the process's descriptor limit
   * is low: at most {@link LISTENER_DESCRIPTOR_SHARE} of it (core/descriptor_limit.ts).
   */
  maxConnections: number;
  /** Descriptors an open connection costs (default 1; 2 for a proxy's client and its dial). */
  descriptorsEach?: number;
  /** Open connections from one source address (excess: closed at once). */
  maxPerSource: number;
  /** Connections from one source address still in their handshake (excess: closed at once). */
  maxHandshakesPerSource: number;
  /** Milliseconds from accept by which the handshake must be done. */
  handshakeMs: number;
  /** Milliseconds without {@link GuardedConn.active} after the handshake before closing. */
  idleMs?: number;
}

/** An accepted connection under the listener's deadlines. */
export interface GuardedConn {
  readonly conn: Deno.Conn;
  /** The client's address and port. */
  readonly source: { address: string; port: number };
  /** When the handshake must be done (epoch ms); the listener closes the connection then. */
  readonly handshakeDeadline: number;
  /**
   * The client finished its handshake: the deadline no longer applies and the connection stops
   * counting against the handshakes of its source (the idle timeout starts, if any).
   */
  established(): void;
  /** Progress on an established connection: restarts the idle timeout. */
  active(): void;
}

/** What the accept loop needs from its surroundings (injected for tests). */
export interface GuardedListenerOptions {
  /** Used in log lines ("socks", "http", "dns"). */
  name: string;
  limits: ListenerLimits;
  /** Serves one connection; the connection is closed when this settles. */
  handle(conn: GuardedConn): Promise<void>;
  /** Backoff bounds after a failed accept, in ms (default 50 → 1000). */
  backoffMs?: { first: number; max: number };
  /** The process's descriptor limit (default: read from the system). */
  descriptorLimit?: number;
  /**
   * At the total cap, stop accepting until a connection ends (the rest wait in the kernel's
   * backlog, holding no descriptor of ours) instead of accepting and closing each at once. For TLS
   * listeners: Deno keeps the descriptor of a TLS connection closed before its handshake until
   * the peer closes it, so closing excess ones at once would not free anything.
   */
  waitWhenFull?: boolean;
}

/** Counts of open connections, for leak checks and the status of a flood. */
export interface ListenerCounts {
  open: number;
  inHandshake: number;
  /** Connections closed at once because a limit was reached. */
  refused: number;
  /** Connections closed because their handshake or idle deadline passed. */
  timedOut: number;
}

const log = logger("listener");

/** The share of the descriptor limit one listener's connections may take. */
export const LISTENER_DESCRIPTOR_SHARE = 1 / 16;

/** Runs the guarded accept loop on `listener` until {@link GuardedListener.close}. */
export class GuardedListener {
  readonly #listener: Deno.Listener;
  readonly #options: GuardedListenerOptions;
  readonly #maxConnections: number;
  readonly #conns = new Set<Deno.Conn>();
  /** Open connections and connections in handshake by source address; entries at zero go. */
  readonly #perSource = new Map<string, { open: number; inHandshake: number }>();
  #inHandshake = 0;
  #refused = 0;
  #timedOut = 0;
  #closed = false;
  /** Wakes an accept loop waiting for a free slot ({@link GuardedListenerOptions.waitWhenFull}). */
  #slotFreed?: () => void;
  readonly done: Promise<void>;

  constructor(listener: Deno.Listener, options: GuardedListenerOptions) {
    this.#listener = listener;
    this.#options = options;
    const { maxConnections, descriptorsEach = 1 } = options.limits;
    this.#maxConnections = fitToDescriptors(
      maxConnections,
      descriptorsEach,
      LISTENER_DESCRIPTOR_SHARE,
      options.descriptorLimit,
    );
    if (this.#maxConnections < maxConnections) {
      log.debug(
        "{name} listener: at most {fitted} connections, not {maxConnections}: a sixteenth of the descriptor limit ({limit}, ulimit -n)",
        {
          name: options.name,
          fitted: this.#maxConnections,
          maxConnections,
          limit: options.descriptorLimit ?? openFileLimit(),
        },
      );
    }
    this.done = this.#acceptLoop();
  }

  /** The address the listener is bound to. */
  get addr(): Deno.NetAddr {
    return this.#listener.addr as Deno.NetAddr;
  }

  counts(): ListenerCounts {
    return {
      open: this.#conns.size,
      inHandshake: this.#inHandshake,
      refused: this.#refused,
      timedOut: this.#timedOut,
    };
  }

  /** Stops accepting and closes every open connection. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#slotFreed?.();
    closeQuietly(this.#listener);
    for (const conn of this.#conns) closeQuietly(conn);
  }

  async #acceptLoop(): Promise<void> {
    const backoff = this.#options.backoffMs ?? { first: 50, max: 1000 };
    let delay = 0;
    let failures = 0;
    while (!this.#closed) {
      if (this.#options.waitWhenFull && this.#conns.size >= this.#maxConnections) {
        await new Promise<void>((resolve) => this.#slotFreed = resolve);
        continue;
      }
      let conn: Deno.Conn;
      try {
        conn = await this.#listener.accept();
      } catch (error) {
        if (this.#closed || error instanceof Deno.errors.BadResource) return;
        // Out of descriptors (EMFILE/ENFILE) or a connection reset before accept: not the
        // listener's end. Say so once per episode, wait, and accept again.
        if (failures++ === 0) {
          log.warn(
            "{name} listener: accept failed ({error}); retrying until descriptors free up",
            { name: this.#options.name, error: (error as Error).message },
          );
        }
        delay = Math.min(backoff.max, delay === 0 ? backoff.first : delay * 2);
        await new Promise((resolve) => setTimeout(resolve, delay));
        continue;
      }
      if (failures > 0) {
        log.info("{name} listener: accepting again after {failures} failed accepts", {
          name: this.#options.name,
          failures,
        });
      }
      failures = 0;
      delay = 0;
      this.#admit(conn);
    }
  }

  #admit(conn: Deno.Conn): void {
    const { limits } = this.#options;
    const remote = conn.remoteAddr as Deno.NetAddr;
    const key = remote.hostname;
    const counts = this.#perSource.get(key) ?? { open: 0, inHandshake: 0 };
    if (
      this.#closed ||
      this.#conns.size >= this.#maxConnections ||
      counts.open >= limits.maxPerSource ||
      counts.inHandshake >= limits.maxHandshakesPerSource
    ) {
      this.#refused++;
      closeQuietly(conn);
      return;
    }
    counts.open++;
    counts.inHandshake++;
    this.#inHandshake++;
    this.#perSource.set(key, counts);
    this.#conns.add(conn);

    let inHandshake = true;
    let idleTimer: ReturnType<typeof setTimeout> | undefined;
    const timeOut = () => {
      this.#timedOut++;
      closeQuietly(conn);
    };
    const leaveHandshake = () => {
      if (!inHandshake) return;
      inHandshake = false;
      clearTimeout(handshakeTimer);
      counts.inHandshake--;
      this.#inHandshake--;
    };
    const handshakeTimer = setTimeout(timeOut, limits.handshakeMs);
    const guarded: GuardedConn = {
      conn,
      source: { address: remote.hostname, port: remote.port },
      handshakeDeadline: Date.now() + limits.handshakeMs,
      established: () => {
        if (!inHandshake) return;
        leaveHandshake();
        guarded.active();
      },
      active: () => {
        if (inHandshake || limits.idleMs === undefined || !this.#conns.has(conn)) return;
        clearTimeout(idleTimer);
        idleTimer = setTimeout(timeOut, limits.idleMs);
      },
    };
    const release = () => {
      leaveHandshake();
      clearTimeout(idleTimer);
      this.#conns.delete(conn);
      if (--counts.open === 0) this.#perSource.delete(key);
      closeQuietly(conn);
      this.#slotFreed?.();
      this.#slotFreed = undefined;
    };
    this.#options.handle(guarded).catch((error) =>
      log.debug("{name} connection from {source} ended: {error}", {
        name: this.#options.name,
        source: key,
        error: String(error),
      })
    ).finally(release);
  }
}

function closeQuietly(resource: { close(): void }): void {
  try {
    resource.close();
  } catch {
    // closed already
  }
}
