/**
 * The DNS server's UDP socket: every datagram goes to `handle`, and its answer, if any, back to
 * the sender. On Linux an IPv4 address gets a non-blocking socket read with plain libc calls
 * (ffi/linux/datagram_socket.ts): one poll wake-up takes in everything waiting, and an answer
 * leaves with one synchronous `sendto` — Deno's socket costs an async op and a promise per
 * datagram each way, which measured more than the rest of a forwarded query. Elsewhere (macOS,
 * IPv6) Deno's socket, with a few receives outstanding.
 */
import { DatagramSocket } from "../../ffi/linux/datagram_socket.ts";
import { openLibc } from "../../ffi/linux/libc.ts";
import { SocketPoller } from "../../ffi/linux/socket_poller.ts";
import { ipv4ToNumber } from "../vip.ts";

/** Answers one datagram (null: no answer). */
export type DatagramHandler = (query: Uint8Array) => Promise<Uint8Array | null>;

/** A bound UDP listener. */
export interface UdpListener {
  port: number;
  close(): void;
}

/** The largest UDP payload (RFC 768: a 16-bit length, less the 8-byte header). */
const MAX_DATAGRAM = 65_527;
/** Datagrams taken in per wake-up, so the answers already there leave between batches. */
const READS_PER_WAKE = 256;
/** Deno receives kept outstanding on its socket. */
const DENO_RECEIVES = 4;

/** Listens on `hostname:port` with the best socket this system has. */
export function listenUdp(
  hostname: string,
  port: number,
  handle: DatagramHandler,
  os: typeof Deno.build.os = Deno.build.os,
): UdpListener {
  const address = ipv4ToNumber(hostname);
  return os === "linux" && address !== undefined
    ? polledListener(address, port, handle)
    : denoListener(hostname, port, handle);
}

function polledListener(address: number, port: number, handle: DatagramHandler): UdpListener {
  const libc = openLibc();
  let socket: DatagramSocket;
  try {
    socket = DatagramSocket.bind(libc.symbols, address, port);
  } catch (error) {
    libc.close();
    throw error;
  }
  let open = true;
  const poller = new SocketPoller(libc.symbols, () => open);
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
      // The last poll returns within its interval; the library stays open until then.
      poller.close().then(() => libc.close());
    },
  };
}

function denoListener(hostname: string, port: number, handle: DatagramHandler): UdpListener {
  const udp = Deno.listenDatagram({ transport: "udp", hostname, port });
  const receiveLoop = async () => {
    // Without a buffer of its own, every receive allocates (and zeroes) a fresh 64 KiB one.
    const buffer = new Uint8Array(MAX_DATAGRAM);
    while (true) {
      const [received, from] = await udp.receive(buffer);
      // Only the datagram's bytes are kept while it is answered: the buffer takes the next one.
      handle(received.slice()).then((answer) => {
        if (answer) return udp.send(answer, from);
      }).catch(() => {});
    }
  };
  for (let i = 0; i < DENO_RECEIVES; i++) receiveLoop().catch(() => {}); // ends when closed
  return { port: (udp.addr as Deno.NetAddr).port, close: () => udp.close() };
}
