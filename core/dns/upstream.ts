/**
 * Forwards DNS queries that are not the cluster's to the system's original resolvers, unchanged
 * but for the id (the bytes as received: flags, EDNS), concurrently — one slow query never delays
 * another. A truncated UDP answer is retried over TCP for a TCP client. What an upstream costs is
 * bounded: UDP queries to a server share a few sockets (udp_exchange.ts), each query has a
 * deadline, and at most `maxInFlight` queries are in flight — past that, the oldest one gives way
 * (its client gets SERVFAIL at once), so a flood of queries that are never answered cannot hold
 * memory or descriptors, nor starve the names that are answered.
 */
import { type Deadline, DeadlineQueue } from "./deadlines.ts";
import { type OpenUpstreamSocket, UdpExchange } from "./udp_exchange.ts";

/** How one server is asked (tun_route binds its sockets to the original device). */
export interface UpstreamTransport {
  /** The reply to a UDP query; rejects after `timeoutMs` or when `signal` aborts. */
  udp(query: Uint8Array, timeoutMs: number, signal: AbortSignal): Promise<Uint8Array>;
  /** The same over TCP (RFC 7766 §5), for truncated answers. */
  tcp(query: Uint8Array, timeoutMs: number, signal: AbortSignal): Promise<Uint8Array>;
  /**
   * Takes in the replies that have arrived but are not handled yet (a busy main thread has not
   * got to them), where the transport can do that without waiting.
   */
  receivePending?(): void;
  close(): Promise<void>;
}

/** Builds the transport to one server. */
export type TransportFactory = (server: string, capacity: number) => UpstreamTransport;

/** The limits of forwarding. */
export interface UpstreamLimits {
  /** How long one try at one server waits before the next try starts (resolv.conf `timeout:`). */
  timeoutMs: number;
  /** Rounds over all servers (resolv.conf `attempts:`). */
  attempts: number;
  /** Queries forwarded at once, over all servers; past it the oldest gives way. */
  maxInFlight: number;
}

/** glibc's defaults (resolv.conf(5)): 5 s per try, 2 rounds. */
export const DEFAULT_UPSTREAM_LIMITS: UpstreamLimits = {
  timeoutMs: 5000,
  attempts: 2,
  maxInFlight: 2048,
};

/**
 * Deno's sockets (forward mode off Linux, and tests; Linux's forward mode uses connected libc
 * sockets, plugins/dns/socket_upstream.ts). Deno's UDP sockets cannot be connected, so each
 * checks the source of what it receives: only the server's address and port are let through.
 */
export function socketTransport(server: string, capacity: number): UpstreamTransport {
  const [host, port] = splitServer(server);
  const udp = denoUdp(host, port, capacity);
  return {
    udp: (query, timeoutMs, signal) => udp.exchange(query, timeoutMs, signal),
    tcp: (query, timeoutMs, signal) => tcpQuery(host, port, query, timeoutMs, signal),
    close: () => udp.close(),
  };
}

/** Deno's sockets, which cannot be connected: each checks the source of what it receives. */
function denoUdp(host: string, port: number, capacity: number) {
  const open: OpenUpstreamSocket = (receive) => {
    const socket = Deno.listenDatagram({
      transport: "udp",
      hostname: host.includes(":") ? "::" : "0.0.0.0",
      port: 0,
    });
    (async () => {
      // One buffer for every receive: without it, each allocates (and zeroes) 64 KiB.
      const buffer = new Uint8Array(65_535);
      while (true) {
        const [datagram, from] = await socket.receive(buffer);
        const source = from as Deno.NetAddr;
        if (source.port === port && source.hostname === host) receive(datagram.slice());
        else exchange.dropForeign();
      }
    })().catch(() => {}); // closed
    return {
      send: async (datagram) =>
        void await socket.send(datagram, { transport: "udp", hostname: host, port }),
      close: () => socket.close(),
    };
  };
  const exchange = new UdpExchange(open, { capacity });
  return exchange;
}

/** One query to `host:port` over TCP (RFC 7766 §5), on a connection of its own. */
export async function tcpQuery(
  host: string,
  port: number,
  query: Uint8Array,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<Uint8Array> {
  signal.throwIfAborted();
  const deadline = AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]);
  const connecting = Deno.connect({ hostname: host, port, signal: deadline });
  const conn = await connecting;
  const close = () => {
    try {
      conn.close();
    } catch {
      // closed already
    }
  };
  deadline.addEventListener("abort", close, { once: true });
  try {
    const framed = new Uint8Array(query.length + 2);
    framed[0] = query.length >> 8;
    framed[1] = query.length & 0xff;
    framed.set(query, 2);
    await conn.write(framed);
    return await readFramed(conn);
  } catch (error) {
    throw deadline.aborted ? new Error(`no TCP answer within ${timeoutMs} ms`) : error;
  } finally {
    deadline.removeEventListener("abort", close);
    close();
  }
}

/** Reads one length-prefixed DNS message from a TCP stream (RFC 1035 §4.2.2). */
export async function readFramed(conn: Deno.Conn): Promise<Uint8Array> {
  const head = await readExactly(conn, 2);
  return await readExactly(conn, (head[0] << 8) | head[1]);
}

async function readExactly(conn: Deno.Conn, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let off = 0;
  while (off < n) {
    const got = await conn.read(out.subarray(off));
    if (got === null) throw new Error("connection closed mid-message");
    off += got;
  }
  return out;
}

/** `1.2.3.4`, `1.2.3.4:5353`, `[::1]:53` or a bare IPv6 address. */
export function splitServer(server: string): [string, number] {
  const v4 = /^(\d+\.\d+\.\d+\.\d+)(?::(\d+))?$/.exec(server);
  if (v4) return [v4[1], v4[2] ? Number(v4[2]) : 53];
  const v6 = /^\[(.+)\]:(\d+)$/.exec(server);
  if (v6) return [v6[1], Number(v6[2])];
  return [server, 53];
}

/** Forwards queries to a list of servers, first good answer wins. */
export class UpstreamResolver {
  readonly #transports = new Map<string, UpstreamTransport>();
  /** Queries being forwarded, oldest first (a Set keeps insertion order). */
  readonly #inFlight = new Set<AbortController>();
  /** When each query's next try starts (one timer for all of them). */
  readonly #deadlines = new DeadlineQueue();
  readonly limits: UpstreamLimits;
  /** Queries that gave way to newer ones because `maxInFlight` were in flight. */
  evicted = 0;
  /** One error for every query that gives way: a flood makes thousands a second. */
  readonly #gaveWay: Error;

  #servers: string[];

  constructor(
    servers: string[],
    readonly transportFor: TransportFactory = socketTransport,
    limits: Partial<UpstreamLimits> = {},
  ) {
    this.#servers = [...servers];
    this.limits = { ...DEFAULT_UPSTREAM_LIMITS, ...limits };
    this.#gaveWay = new Error(
      `gave way to newer queries: ${this.limits.maxInFlight} were in flight`,
    );
  }

  /** The servers tried, in order. */
  get servers(): readonly string[] {
    return this.#servers;
  }

  /**
   * Forwards to `servers` from now on (the system's resolvers changed). Queries in flight finish
   * with the servers they started with; a server no longer listed loses its transport.
   */
  setServers(servers: string[]): void {
    for (const [server, transport] of this.#transports) {
      if (servers.includes(server)) continue;
      transport.close();
      this.#transports.delete(server);
    }
    this.#servers = [...servers];
  }

  /** Tries one server may have waiting: each query in flight may have one per round. */
  get #capacity(): number {
    return this.limits.maxInFlight * this.limits.attempts;
  }

  /** Queries being forwarded now. */
  get inFlight(): number {
    return this.#inFlight.size;
  }

  /** Sends the queries for `server` through a transport `factory` builds, from now on. */
  useTransport(server: string, factory: TransportFactory): void {
    this.#transports.get(server)?.close();
    this.#transports.set(server, factory(server, this.#capacity));
  }

  /**
   * The upstream's reply to `query` (raw bytes), or throws when none answered. A truncated UDP
   * answer is retried over TCP only for a client that asked over TCP; a UDP client gets the TC
   * answer and retries over TCP itself (RFC 7766 §5), so no answer exceeds its UDP limit.
   */
  async forward(query: Uint8Array, clientOverTcp = false): Promise<Uint8Array> {
    if (this.servers.length === 0) throw new Error("no upstream DNS servers are configured");
    const controller = new AbortController();
    if (this.#inFlight.size >= this.limits.maxInFlight) {
      // Like Unbound's jostling: the query that has waited longest is the likeliest never to be
      // answered; refusing the new one instead would let a flood of unanswered names lock out
      // every other name for the whole deadline. Replies already there are taken in first: a
      // flood keeps the main thread busy, and an answered query must not give way for that.
      for (const transport of this.#transports.values()) transport.receivePending?.();
      const [oldest] = this.#inFlight;
      this.#inFlight.delete(oldest);
      this.evicted++;
      oldest.abort(this.#gaveWay);
    }
    this.#inFlight.add(controller);
    try {
      return await this.#tries(query, clientOverTcp, controller);
    } finally {
      this.#inFlight.delete(controller);
      controller.abort(ANSWERED); // the tries still waiting stop
    }
  }

  /**
   * The tries of one query, as the system's own resolver would make them (resolv.conf(5)): each
   * server in turn, `attempts` rounds, a new try every `timeoutMs` — but an earlier try keeps
   * waiting until the last one's deadline, so a slow server's late answer still counts (the
   * client's resolver is as patient). The first answer wins.
   */
  #tries(query: Uint8Array, clientOverTcp: boolean, controller: AbortController) {
    const { timeoutMs, attempts } = this.limits;
    const { signal } = controller;
    const schedule = Array.from({ length: attempts }, () => this.servers).flat();
    const lastDeadline = schedule.length * timeoutMs;
    const errors = new Map<string, string>();
    return new Promise<Uint8Array>((resolve, reject) => {
      let started = 0;
      let waiting = 0;
      let next: Deadline | undefined;
      const start = () => {
        next?.cancel();
        if (signal.aborted || started === schedule.length) return;
        const server = schedule[started];
        const waitMs = lastDeadline - started * timeoutMs;
        started++;
        waiting++;
        if (started < schedule.length) next = this.#deadlines.add(timeoutMs, start);
        this.#try(server, query, clientOverTcp, waitMs, signal).then(resolve, (error) => {
          waiting--;
          if (!errors.has(server)) errors.set(server, (error as Error).message);
          if (signal.aborted) return reject(signal.reason);
          // Every try so far failed (e.g. refused at once): the next one starts now.
          if (waiting === 0 && started < schedule.length) return start();
          if (waiting === 0) {
            reject(new Error([...errors].map(([s, e]) => `${s}: ${e}`).join("; ")));
          }
        });
      };
      signal.addEventListener("abort", () => next?.cancel(), { once: true });
      start();
    });
  }

  async #try(
    server: string,
    query: Uint8Array,
    clientOverTcp: boolean,
    waitMs: number,
    signal: AbortSignal,
  ): Promise<Uint8Array> {
    const transport = this.#transport(server);
    const reply = await transport.udp(query, waitMs, signal);
    const truncated = reply.length >= 3 && (reply[2] & 0x02) !== 0;
    return truncated && clientOverTcp
      ? await transport.tcp(query, this.limits.timeoutMs, signal)
      : reply;
  }

  /** Closes every server's sockets. */
  async close(): Promise<void> {
    for (const controller of this.#inFlight) controller.abort(new Error("k8stun is stopping"));
    this.#deadlines.clear();
    await Promise.all([...this.#transports.values()].map((t) => t.close()));
    this.#transports.clear();
  }

  #transport(server: string): UpstreamTransport {
    let transport = this.#transports.get(server);
    if (!transport) {
      transport = this.transportFor(server, this.#capacity);
      this.#transports.set(server, transport);
    }
    return transport;
  }
}

/** Ends the tries still waiting once one answered. */
const ANSWERED = new Error("answered");

/**
 * The `options timeout:N attempts:N` of resolv.conf text, as glibc reads them (timeout capped at
 * 30 s, attempts at 5; resolv.conf(5)); defaults where absent.
 */
export function parseResolvOptions(text: string): Pick<UpstreamLimits, "timeoutMs" | "attempts"> {
  let timeout = DEFAULT_UPSTREAM_LIMITS.timeoutMs / 1000;
  let attempts = DEFAULT_UPSTREAM_LIMITS.attempts;
  for (const line of text.split("\n")) {
    const fields = line.trim().split(/\s+/);
    if (fields[0] !== "options") continue;
    for (const option of fields.slice(1)) {
      const [name, value] = option.split(":");
      const n = Number(value);
      if (!Number.isInteger(n)) continue;
      if (name === "timeout") timeout = Math.min(Math.max(n, 1), 30);
      if (name === "attempts") attempts = Math.min(Math.max(n, 1), 5);
    }
  }
  return { timeoutMs: timeout * 1000, attempts };
}

/** Nameservers listed in resolv.conf text. */
export function parseResolvConf(text: string): string[] {
  return text.split("\n").map((l) => l.trim()).filter((l) => l.startsWith("nameserver"))
    .map((l) => l.split(/\s+/)[1]).filter((s): s is string => Boolean(s));
}
