/**
 * The DNS server's UDP socket: every datagram goes to `handle`, and its answer, if any, back to
 * the sender. This is Deno's socket, with a few receives outstanding; on Linux the CLI passes a
 * faster one (ffi/linux/udp_server.ts) of the same shape.
 */

/** Answers one datagram (null: no answer). */
export type DatagramHandler = (query: Uint8Array) => Promise<Uint8Array | null>;

/** A bound UDP listener. */
export interface UdpListener {
  port: number;
  close(): void;
}

/** Opens a UDP listener on `hostname:port` that answers with `handle`. */
export type ListenUdp = (hostname: string, port: number, handle: DatagramHandler) => UdpListener;

/** The largest UDP payload (RFC 768: a 16-bit length, less the 8-byte header). */
const MAX_DATAGRAM = 65_527;
/** Receives kept outstanding on the socket. */
const RECEIVES = 4;

/** Deno's UDP socket. */
export const listenDenoUdp: ListenUdp = (hostname, port, handle) => {
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
  for (let i = 0; i < RECEIVES; i++) receiveLoop().catch(() => {}); // ends when closed
  return { port: (udp.addr as Deno.NetAddr).port, close: () => udp.close() };
};
