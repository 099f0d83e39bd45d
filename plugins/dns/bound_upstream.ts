/**
 * Upstream DNS transport for `tun_route`: queries leave through sockets bound to the interface
 * the resolver was reached by before k8stun routed it into the TUN (SO_BINDTODEVICE on Linux,
 * ffi/linux/bound_socket.ts; IP_BOUND_IF on macOS, ffi/darwin/bound_socket.ts).
 * UDP goes over a few non-blocking sockets connected to the resolver, read by one poller while
 * queries are in flight (polled_exchange.ts) — a fixed number of descriptors and at
 * most one waiting thread, however many queries are outstanding (udp_exchange.ts multiplexes
 * them). TCP, for truncated answers (RFC 7766 §5), uses a socket per query on a blocking-call
 * thread, so at most {@link MAX_TCP_QUERIES} run at once.
 */
import type { UpstreamTransport } from "../../core/dns/upstream.ts";
import { polledExchange } from "./polled_exchange.ts";
import { ipv4ToNumber } from "../../core/vip.ts";
import { BoundSocket } from "../../ffi/linux/bound_socket.ts";
import { cString, type Libc, openLibc } from "../../ffi/linux/libc.ts";
import { Darwin } from "../../ffi/darwin/libsystem.ts";
import { DarwinBoundSocket } from "../../ffi/darwin/bound_socket.ts";

/** TCP queries to one server at once: each holds a descriptor and a blocking-call thread. */
export const MAX_TCP_QUERIES = 16;

/** A socket bound to the device (either OS's BoundSocket). */
type DeviceSocket = Pick<
  BoundSocket,
  "fd" | "connect" | "send" | "receiveNow" | "shutdown" | "receive" | "close"
>;

/** The OS half of the transport: sockets bound to one device, and a poll over them. */
export interface DeviceSockets {
  datagram(address: number, port: number): DeviceSocket;
  stream(timeoutMs: number): DeviceSocket;
  poll: Pick<Libc, "pollBlocking">;
}

/** Sockets bound to `device` on this OS (macOS: looked up by name once, here). */
export function systemDeviceSockets(device: string, os = Deno.build.os): DeviceSockets {
  if (os === "darwin") {
    const darwin = new Darwin();
    const ifindex = darwin.sym.if_nametoindex(cString(device));
    if (ifindex === 0) {
      darwin.close();
      throw new Error(`the interface ${device} that reached the resolver is gone`);
    }
    return {
      datagram: (address, port) => DarwinBoundSocket.datagram(darwin, ifindex, address, port),
      stream: (timeoutMs) => DarwinBoundSocket.stream(darwin, ifindex, timeoutMs),
      // nfds_t is 32 bits on macOS (ffi/poll_pair.ts).
      poll: { pollBlocking: (fds, count, ms) => darwin.sym.pollBlocking(fds, Number(count), ms) },
    };
  }
  const { symbols: libc } = openLibc();
  return {
    datagram: (address, port) => BoundSocket.datagram(libc, device, address, port),
    stream: (timeoutMs) => BoundSocket.stream(libc, device, timeoutMs),
    poll: libc,
  };
}

/** A transport to `server` (an IPv4 address, optionally `:port`) whose sockets are bound to `device`. */
export function boundTransport(
  server: string,
  device: string,
  capacity: number,
  sockets: DeviceSockets = systemDeviceSockets(device),
): UpstreamTransport {
  const [host, portText] = server.split(":");
  const address = ipv4ToNumber(host);
  if (address === undefined) throw new Error(`${server} is not an IPv4 resolver`);
  const port = portText ? Number(portText) : 53;
  const { exchange, poller, close } = polledExchange(
    () => sockets.datagram(address, port),
    sockets.poll,
    capacity,
  );
  let tcpQueries = 0;
  return {
    // Failures name the server already (UpstreamResolver.forward), and a flood makes many.
    udp: (query, timeoutMs, signal) => exchange.exchange(query, timeoutMs, signal),
    async tcp(query, timeoutMs, signal) {
      if (tcpQueries >= MAX_TCP_QUERIES) {
        throw new Error(`${MAX_TCP_QUERIES} TCP queries to ${server} are already running`);
      }
      const socket = sockets.stream(timeoutMs);
      tcpQueries++;
      // A receive blocked in another thread only returns early when the socket is shut down.
      const stop = () => socket.shutdown();
      signal.addEventListener("abort", stop, { once: true });
      const deadline = performance.now() + timeoutMs;
      try {
        await socket.connect(address, port);
        const framed = new Uint8Array(query.length + 2);
        new DataView(framed.buffer).setUint16(0, query.length);
        framed.set(query, 2);
        socket.send(framed);
        // RFC 1035 §4.2.2: a two-byte length, then the message (at most 65,535 bytes).
        const received = new Uint8Array(2 + 65535);
        let have = 0;
        const needed = () => have < 2 ? 2 : 2 + ((received[0] << 8) | received[1]);
        while (have < needed()) {
          // Each receive waits at most timeoutMs; the whole answer gets no more than that either.
          if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms`);
          const n = await socket.receive(received.subarray(have));
          if (n === 0) throw new Error("connection closed mid-answer");
          have += n;
        }
        return received.slice(2, needed());
      } catch (error) {
        const reason = signal.aborted ? (signal.reason as Error) : (error as Error);
        throw new Error(`no TCP answer from ${server} via ${device}: ${reason.message}`);
      } finally {
        signal.removeEventListener("abort", stop);
        socket.close();
        tcpQueries--;
      }
    },
    receivePending: () => poller.readNow(),
    close,
  };
}
