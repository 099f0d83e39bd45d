/**
 * Forwards DNS queries that are not the cluster's to the system's original resolvers, unchanged
 * (id, flags, EDNS: the bytes as received), concurrently — one slow query never delays another
 * (D5). A truncated UDP answer is retried over TCP. Each query gets its own socket (a fresh source
 * port), and only a reply carrying the query's id is taken.
 */

/** A way to send one UDP query and get the reply (tun_route binds it to the original device). */
export interface UpstreamTransport {
  udp(server: string, query: Uint8Array, timeoutMs: number): Promise<Uint8Array>;
  tcp(server: string, query: Uint8Array, timeoutMs: number): Promise<Uint8Array>;
}

/** Plain sockets (forward mode and tests). */
export const SOCKET_TRANSPORT: UpstreamTransport = {
  async udp(server, query, timeoutMs) {
    const [host, port] = splitServer(server);
    const socket = Deno.listenDatagram({
      transport: "udp",
      hostname: host.includes(":") ? "::" : "0.0.0.0",
      port: 0,
    });
    const timer = setTimeout(() => socket.close(), timeoutMs);
    try {
      await socket.send(query, { transport: "udp", hostname: host, port });
      while (true) {
        const [reply] = await socket.receive();
        if (reply.length >= 2 && reply[0] === query[0] && reply[1] === query[1]) return reply;
      }
    } catch {
      throw new Error(`no answer from ${server} within ${timeoutMs} ms`);
    } finally {
      clearTimeout(timer);
      try {
        socket.close();
      } catch {
        // closed by the timer
      }
    }
  },
  async tcp(server, query, timeoutMs) {
    const [host, port] = splitServer(server);
    const conn = await Deno.connect({ hostname: host, port });
    const timer = setTimeout(() => conn.close(), timeoutMs);
    try {
      const framed = new Uint8Array(query.length + 2);
      framed[0] = query.length >> 8;
      framed[1] = query.length & 0xff;
      framed.set(query, 2);
      await conn.write(framed);
      return await readFramed(conn);
    } finally {
      clearTimeout(timer);
      try {
        conn.close();
      } catch {
        // closed by the timer
      }
    }
  },
};

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
function splitServer(server: string): [string, number] {
  const v4 = /^(\d+\.\d+\.\d+\.\d+)(?::(\d+))?$/.exec(server);
  if (v4) return [v4[1], v4[2] ? Number(v4[2]) : 53];
  const v6 = /^\[(.+)\]:(\d+)$/.exec(server);
  if (v6) return [v6[1], Number(v6[2])];
  return [server, 53];
}

/** Forwards queries to a list of servers, first good answer wins. */
export class UpstreamResolver {
  /** Per-server transports that replace the default one (tun_route's device-bound sockets). */
  readonly #transports = new Map<string, UpstreamTransport>();

  constructor(
    readonly servers: string[],
    readonly transport: UpstreamTransport = SOCKET_TRANSPORT,
    readonly timeoutMs = 3000,
  ) {}

  /** Sends the queries for `server` through `transport` from now on. */
  useTransport(server: string, transport: UpstreamTransport): void {
    this.#transports.set(server, transport);
  }

  /**
   * The upstream's reply to `query` (raw bytes), or throws when none answered. A truncated UDP
   * answer is retried over TCP only for a client that asked over TCP; a UDP client gets the TC
   * answer and retries over TCP itself (RFC 7766 §5), so no answer exceeds its UDP limit.
   */
  async forward(query: Uint8Array, clientOverTcp = false): Promise<Uint8Array> {
    if (this.servers.length === 0) throw new Error("no upstream DNS servers are configured");
    const errors: string[] = [];
    for (const server of this.servers) {
      try {
        const transport = this.#transports.get(server) ?? this.transport;
        const reply = await transport.udp(server, query, this.timeoutMs);
        const truncated = reply.length >= 3 && (reply[2] & 0x02) !== 0;
        return truncated && clientOverTcp
          ? await transport.tcp(server, query, this.timeoutMs)
          : reply;
      } catch (error) {
        errors.push((error as Error).message);
      }
    }
    throw new Error(errors.join("; "));
  }
}

/** Nameservers listed in resolv.conf text. */
export function parseResolvConf(text: string): string[] {
  return text.split("\n").map((l) => l.trim()).filter((l) => l.startsWith("nameserver"))
    .map((l) => l.split(/\s+/)[1]).filter((s): s is string => Boolean(s));
}
