/**
 * A UDP server on a non-blocking libc socket (datagram_socket.ts): one poll wake-up
 * ({@link SocketPoller}) takes in everything waiting, and each answer leaves with one synchronous
 * `sendto`. Deno's socket costs an async op and a promise per datagram each way, which measured
 * more than the rest of a forwarded DNS query. IPv4 only.
 */
import type { DatagramHandler, UdpListener } from "../../core/dns/udp_listener.ts";
import { DatagramSocket } from "./datagram_socket.ts";
import { openLibc } from "./libc.ts";
import { SocketPoller } from "./socket_poller.ts";

/** The largest UDP payload (RFC 768: a 16-bit length, less the 8-byte header). */
const MAX_DATAGRAM = 65_527;
/** Datagrams taken in per wake-up, so the answers already there leave between batches. */
const READS_PER_WAKE = 256;
/**
 * The longest single wait of the listener's poll. Its one socket never changes, and `close()`
 * shuts the socket down, which ends the wait at once (shutdown wakes a poll even on an unconnected
 * UDP socket), so nothing needs the wait to end early: an idle listener wakes the main thread every
 * 5 s, not ten times a second (a laptop's CPU stays asleep).
 */
const IDLE_WAIT_MS = 5_000;

/** Serves UDP on `hostname:port` (a dotted IPv4 address) with `handle`. */
export function listenPolledUdp(
  hostname: string,
  port: number,
  handle: DatagramHandler,
): UdpListener {
  const octets = hostname.split(".").map(Number);
  if (octets.length !== 4 || octets.some((o) => !Number.isInteger(o) || o < 0 || o > 255)) {
    throw new Error(`${hostname} is not an IPv4 address`);
  }
  const address = ((octets[0] << 24) | (octets[1] << 16) | (octets[2] << 8) | octets[3]) >>> 0;
  const libc = openLibc();
  let socket: DatagramSocket;
  try {
    socket = DatagramSocket.bind(libc.symbols, address, port);
  } catch (error) {
    libc.close();
    throw error;
  }
  let open = true;
  const poller = new SocketPoller(libc.symbols, () => open, IDLE_WAIT_MS);
  const buffer = new Uint8Array(MAX_DATAGRAM);
  const from = new Uint8Array(16);
  const reply = (client: Uint8Array) => (answer: Uint8Array | null) => {
    // A full send buffer or a vanished client loses the answer, as UDP may; the client retries.
    if (answer && open) socket.sendTo(answer, client);
  };
  poller.add(socket.fd, () => {
    for (let i = 0; i < READS_PER_WAKE && open; i++) {
      const n = socket.receiveFrom(buffer, from);
      if (n < 0) return; // EAGAIN: all taken in
      // Only the datagram's bytes are kept while it is answered: the buffer takes the next one.
      handle(buffer.slice(0, n)).then(reply(from.slice()), () => {});
    }
  });
  poller.wake();
  return {
    port: socket.port,
    close() {
      if (!open) return;
      open = false;
      poller.remove(socket.fd);
      socket.close();
      // The last poll returns at once (the socket was shut down); the library stays open until then.
      poller.close().then(() => libc.close());
    },
  };
}
