/**
 * Non-blocking IPv4 sockets the packet loop opens itself, from the OS module that gives it its
 * device end: TCP for the flows it dials and relays (docs/architecture.md, "Dialed from the packet
 * loop"), UDP for the DNS queries it forwards (core/net/packet_loop/dns_forwarder.ts)
 * (PacketIo.sockets). Every call returns at once; the loop's one wait (PacketIo.wait) also wakes
 * when a watched socket is ready, and {@link LoopSockets.ready} then says which. Used by the
 * loop's thread only.
 */

/** Results below 0 are `-errno`; these are the ones the loop tells apart. */
export const SocketError = {
  /** Nothing to read, or no room to write: wait for readiness. */
  WOULD_BLOCK: -11,
  CONNECTION_REFUSED: -111,
  TIMED_OUT: -110,
  /** The peer reset the connection (read), or had (write). */
  CONNECTION_RESET: -104,
  BROKEN_PIPE: -32,
} as const;

export interface LoopSockets {
  /**
   * Opens a socket and starts connecting it to `address:port` (host byte order), with
   * TCP_NODELAY: its descriptor, or `-errno` when that failed at once.
   */
  connect(address: number, port: number): number;
  /**
   * Opens a UDP socket bound to the network device `device` (its datagrams leave by that
   * interface whatever the routes say) and connected to `address:port` (the kernel picks a
   * random source port and delivers only the peer's datagrams): its descriptor. Throws, saying
   * why, when the system refuses.
   */
  datagram(device: string, address: number, port: number): number;
  /** The outcome of a connect once the socket turned writable: 0, or `-errno`. */
  connectResult(fd: number): number;
  /**
   * Reads into `into`: bytes read, 0 at the end of the stream, or `-errno` (WOULD_BLOCK). On a
   * UDP socket, one datagram (a refused earlier one shows as CONNECTION_REFUSED, once).
   */
  read(fd: number, into: Uint8Array): number;
  /** Writes from `bytes`: bytes taken (maybe fewer), or `-errno` (WOULD_BLOCK: none taken). */
  write(fd: number, bytes: Uint8Array): number;
  /** Sends FIN after what was written. */
  shutdownWrite(fd: number): void;
  /** Closes the socket (it stops being watched). */
  close(fd: number): void;
  /** What to wake the loop for on `fd` from now on. */
  watch(fd: number, readable: boolean, writable: boolean): void;
  /** Visits the sockets that were ready at the last wait (`failed`: an error or hang-up). */
  ready(visit: (fd: number, readable: boolean, writable: boolean) => void): void;
}
