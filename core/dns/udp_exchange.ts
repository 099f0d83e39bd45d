/**
 * UDP queries to one upstream server over a small, fixed set of sockets, many queries in flight
 * on each: the id of every query is rewritten to a random one of ours (and the client's put back
 * into the reply), the socket is picked at random (RFC 5452 §9.2: several source ports), and a
 * reply is taken only when {@link InflightQueries.match} says it answers the query — anything
 * else is dropped and the query keeps waiting for the real answer until its deadline. The
 * sockets are opened on first use and kept; how a socket sends and receives is the caller's
 * (Deno sockets in forward mode, device-bound ones in tun_route mode).
 */
import { type Deadline, DeadlineQueue } from "./deadlines.ts";
import { cryptoRandomId, InflightQueries } from "./inflight.ts";

/** One socket to the server. */
export interface UpstreamSocket {
  /** Sends one datagram; throws (or rejects) when it cannot. */
  send(datagram: Uint8Array): void | Promise<void>;
  /**
   * Hands the datagrams already waiting in the socket to `receive` now, synchronously. Asked
   * before queries time out: a reply can wait unread while this thread is busy (a flood) though
   * its deadline's timer fires on time. Sockets that cannot read synchronously leave it out.
   */
  takeWaiting?(): void;
  close(): void | Promise<void>;
}

/**
 * Opens a socket to the server. Every datagram the socket receives from the server goes to
 * `receive` (a socket that can hear others checks the source itself and counts what it drops).
 */
export type OpenUpstreamSocket = (receive: (datagram: Uint8Array) => void) => UpstreamSocket;

/**
 * A query waiting for its reply: settles once, whichever comes first of the reply, its deadline
 * and its signal. One object, and the abort listener itself, instead of a closure for each.
 */
class Waiter {
  id = -1;
  deadline?: Deadline;
  #settled = false;

  constructor(
    readonly exchange: Pick<UdpExchange, "forget">,
    readonly query: Uint8Array,
    readonly signal: AbortSignal | undefined,
    readonly onReply: (reply: Uint8Array) => void,
    readonly onError: (error: Error) => void,
  ) {}

  /** The reply arrived: it gets the client's id back. */
  resolve(reply: Uint8Array): void {
    if (!this.#finish()) return;
    reply[0] = this.query[0];
    reply[1] = this.query[1];
    this.onReply(reply);
  }

  reject(error: Error): void {
    if (this.#finish()) this.onError(error);
  }

  /** The signal aborted (EventListener). */
  handleEvent(): void {
    this.reject(this.signal!.reason ?? new Error("abandoned"));
  }

  #finish(): boolean {
    if (this.#settled) return false;
    this.#settled = true;
    this.deadline?.cancel();
    this.signal?.removeEventListener("abort", this);
    if (this.id >= 0) this.exchange.forget(this.id);
    return true;
  }
}

/** Sockets opened per server: four random source ports (a fixed number of descriptors). */
export const UPSTREAM_SOCKETS = 4;

/** Multiplexes queries to one server over a few sockets. */
export class UdpExchange {
  readonly #queries: InflightQueries<Waiter>;
  readonly #sockets: UpstreamSocket[] = [];
  readonly #randomId: () => number;
  /** Datagrams the sockets themselves refused (from another address or port). */
  #foreign = 0;
  #closed = false;
  readonly #deadlines = new DeadlineQueue();
  #timeout?: { ms: number; error: Error };
  /** The sockets' waiting datagrams were taken in during this turn (deadlines fire in batches). */
  #tookWaiting = false;

  constructor(
    readonly open: OpenUpstreamSocket,
    options: { capacity: number; sockets?: number; randomId?: () => number },
  ) {
    this.#randomId = options.randomId ?? cryptoRandomId();
    this.#queries = new InflightQueries(options.capacity, this.#randomId);
    this.socketCount = options.sockets ?? UPSTREAM_SOCKETS;
  }

  readonly socketCount: number;

  /** Queries sent and not yet answered, timed out or abandoned. */
  get inFlight(): number {
    return this.#queries.size;
  }

  /** Datagrams dropped because they answered no query in flight (forged, stale or late). */
  get dropped(): number {
    return this.#queries.dropped + this.#foreign;
  }

  /** Counts a datagram a socket received from someone other than the server. */
  dropForeign(): void {
    this.#foreign++;
  }

  /**
   * Sends `query` and resolves with the server's reply, which carries the query's own id.
   * Rejects after `timeoutMs`, when `signal` aborts, or at once when the exchange is full.
   */
  exchange(query: Uint8Array, timeoutMs: number, signal?: AbortSignal): Promise<Uint8Array> {
    if (this.#closed) return Promise.reject(new Error("the upstream connection is closed"));
    if (signal?.aborted) return Promise.reject(signal.reason);
    const socket = this.#randomId() % this.socketCount;
    const { promise, resolve, reject } = Promise.withResolvers<Uint8Array>();
    const waiter = new Waiter(this, query, signal, resolve, reject);
    const id = this.#queries.add(query, socket, waiter);
    if (id === undefined) {
      const full = this.#queries.size >= this.#queries.capacity;
      reject(new Error(full ? "too many queries in flight" : "the query's question is unreadable"));
      return promise;
    }
    waiter.id = id;
    signal?.addEventListener("abort", waiter, { once: true });
    waiter.deadline = this.#deadlines.add(timeoutMs, () => {
      this.#takeWaiting(); // its reply may be among them: then the query is answered, not failed
      waiter.reject(this.#timedOut(timeoutMs));
    });
    const datagram = query.slice();
    datagram[0] = id >> 8;
    datagram[1] = id & 0xff;
    try {
      const sent = this.#socket(socket).send(datagram);
      if (sent) sent.catch((error) => waiter.reject(error));
    } catch (error) {
      waiter.reject(error as Error);
    }
    return promise;
  }

  /** Forgets the query sent with `id` (it was answered, timed out or abandoned). */
  forget(id: number): void {
    this.#queries.delete(id);
  }

  /** Closes the sockets; queries in flight fail at once. */
  async close(): Promise<void> {
    this.#closed = true;
    const closed = new Error("the upstream connection is closed");
    for (const waiter of this.#queries.clear()) waiter.reject(closed);
    this.#deadlines.clear();
    const sockets = this.#sockets.splice(0);
    await Promise.all(sockets.map((socket) => socket?.close()));
  }

  /** Takes in what waits in every socket, once per turn however many deadlines are due. */
  #takeWaiting(): void {
    if (this.#tookWaiting) return;
    this.#tookWaiting = true;
    queueMicrotask(() => this.#tookWaiting = false);
    for (const socket of this.#sockets) socket?.takeWaiting?.();
  }

  /** One error per deadline, shared by the queries that reach it (a flood makes many). */
  #timedOut(timeoutMs: number): Error {
    if (this.#timeout?.ms !== timeoutMs) {
      this.#timeout = { ms: timeoutMs, error: new Error(`no answer within ${timeoutMs} ms`) };
    }
    return this.#timeout.error;
  }

  #socket(index: number): UpstreamSocket {
    return this.#sockets[index] ??= this.open((datagram) =>
      this.#queries.match(index, datagram)?.resolve(datagram)
    );
  }
}
