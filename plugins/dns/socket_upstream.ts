/**
 * Upstream DNS transport for `forward` mode on Linux: UDP over a few non-blocking libc sockets
 * connected to the resolver (the kernel keeps out datagrams from anyone else, RFC 5452 §9.1) and
 * read by one poller (polled_exchange.ts), where Deno's sockets cost an async op and a promise per
 * datagram each way. TCP, for truncated answers, is core's. Elsewhere, and for IPv6 resolvers,
 * core's Deno-socket transport.
 */
import {
  socketTransport,
  splitServer,
  tcpQuery,
  type UpstreamTransport,
} from "../../core/dns/upstream.ts";
import { ipv4ToNumber } from "../../core/vip.ts";
import { DatagramSocket } from "../../ffi/linux/datagram_socket.ts";
import { openLibc } from "../../ffi/linux/libc.ts";
import { polledExchange } from "./polled_exchange.ts";

/** The transport to `server` this system does best (a TransportFactory). */
export function systemSocketTransport(
  server: string,
  capacity: number,
  os: typeof Deno.build.os = Deno.build.os,
): UpstreamTransport {
  const [host, port] = splitServer(server);
  const address = ipv4ToNumber(host);
  if (os !== "linux" || address === undefined) return socketTransport(server, capacity);
  const libc = openLibc();
  const polled = polledExchange(
    () => DatagramSocket.connect(libc.symbols, address, port),
    libc.symbols,
    capacity,
  );
  return {
    udp: (query, timeoutMs, signal) => polled.exchange.exchange(query, timeoutMs, signal),
    tcp: (query, timeoutMs, signal) => tcpQuery(host, port, query, timeoutMs, signal),
    receivePending: () => polled.poller.readNow(),
    async close() {
      await polled.exchange.close(); // what is in flight fails now
      // The poll still waiting returns at once (its sockets were shut down); the library it
      // runs in stays open until then.
      polled.poller.close().then(() => libc.close());
    },
  };
}
