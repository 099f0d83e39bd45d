/**
 * Upstream DNS transport for `tun_route`: queries leave through sockets bound to the interface
 * the resolver was reached by before k8stun routed it into the TUN (ffi/linux/bound_socket.ts),
 * UDP first and TCP for truncated answers (RFC 7766 §5), one socket per query (a fresh source port
 * each time, RFC 5452 §9.2).
 */
import type { UpstreamTransport } from "../../core/dns/upstream.ts";
import { ipv4ToNumber } from "../../core/vip.ts";
import { BoundSocket } from "../../ffi/linux/bound_socket.ts";
import { openLibc } from "../../ffi/linux/libc.ts";

/** A transport whose sockets are bound to `device`. */
export function boundTransport(device: string): UpstreamTransport {
  const { symbols: libc } = openLibc();
  const peer = (server: string): [number, number] => {
    const [host, port] = server.split(":");
    const address = ipv4ToNumber(host);
    if (address === undefined) throw new Error(`${server} is not an IPv4 resolver`);
    return [address, port ? Number(port) : 53];
  };
  return {
    async udp(server, query, timeoutMs) {
      const socket = BoundSocket.open(libc, "udp", device, timeoutMs);
      try {
        await socket.connect(...peer(server));
        socket.send(query);
        const deadline = performance.now() + timeoutMs;
        const buffer = new Uint8Array(65535);
        while (performance.now() < deadline) {
          const n = await socket.receive(buffer);
          // The reply to this query carries its id; anything else is stale or spoofed.
          if (n >= 2 && buffer[0] === query[0] && buffer[1] === query[1]) return buffer.slice(0, n);
        }
        throw new Error("timed out");
      } catch (error) {
        throw new Error(`no answer from ${server} via ${device}: ${(error as Error).message}`);
      } finally {
        socket.close();
      }
    },
    async tcp(server, query, timeoutMs) {
      const socket = BoundSocket.open(libc, "tcp", device, timeoutMs);
      try {
        await socket.connect(...peer(server));
        const framed = new Uint8Array(query.length + 2);
        new DataView(framed.buffer).setUint16(0, query.length);
        framed.set(query, 2);
        socket.send(framed);
        // RFC 1035 §4.2.2: a two-byte length, then the message (at most 65,535 bytes).
        const received = new Uint8Array(2 + 65535);
        let have = 0;
        const needed = () => have < 2 ? 2 : 2 + ((received[0] << 8) | received[1]);
        while (have < needed()) {
          const n = await socket.receive(received.subarray(have));
          if (n === 0) throw new Error("connection closed mid-answer");
          have += n;
        }
        return received.slice(2, needed());
      } catch (error) {
        throw new Error(`no TCP answer from ${server} via ${device}: ${(error as Error).message}`);
      } finally {
        socket.close();
      }
    },
  };
}
