/**
 * A UDP or TCP socket bound to one network device (`SO_BINDTODEVICE`, needs CAP_NET_RAW): its
 * route lookups only see that device's routes, so traffic to an address k8stun has routed into
 * its TUN still leaves through the original interface (how `tun_route` DNS reaches the real
 * resolvers without looping). A TCP socket waits on Deno's blocking-call threads, its receive and
 * send limits from SO_RCVTIMEO/SO_SNDTIMEO, so no call waits for ever. A UDP socket is
 * non-blocking and connected: the kernel delivers only datagrams from its peer (RFC 5452 §9.1),
 * and a {@link SocketPoller} says when one is there.
 */
import { cString, errno, type Libc } from "./libc.ts";

const AF_INET = 2;
const SOCK_STREAM = 1;
const SOCK_DGRAM = 2;
const SOCK_NONBLOCK = 0x800;
const SOCK_CLOEXEC = 0x80000;
const SHUT_RDWR = 2;
const SOL_SOCKET = 1;
const SO_BINDTODEVICE = 25;
const SO_RCVTIMEO = 20;
const SO_SNDTIMEO = 21;

/** sockaddr_in (16 bytes): family (host order), port and address (network order). */
export function sockaddrIn(address: number, port: number): Uint8Array {
  const out = new Uint8Array(16);
  const view = new DataView(out.buffer);
  view.setUint16(0, AF_INET, true);
  view.setUint16(2, port, false);
  view.setUint32(4, address, false);
  return out;
}

/** An open, device-bound socket. */
export class BoundSocket {
  #open = true;

  private constructor(readonly libc: Libc, readonly fd: number) {}

  /** Opens a TCP socket bound to `device`; every receive or send waits at most `timeoutMs`. */
  static stream(libc: Libc, device: string, timeoutMs: number): BoundSocket {
    const timeval = new Uint8Array(
      new BigInt64Array([
        BigInt(Math.floor(timeoutMs / 1000)),
        BigInt((timeoutMs % 1000) * 1000),
      ]).buffer,
    );
    return BoundSocket.#create(
      libc,
      SOCK_STREAM,
      device,
      (fd) =>
        libc.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, timeval, 16) >= 0 &&
        libc.setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, timeval, 16) >= 0,
    );
  }

  /**
   * Opens a non-blocking UDP socket bound to `device` and connected to `address:port`: the
   * kernel picks a random source port (RFC 5452 §9.2) and drops datagrams from anyone else.
   */
  static datagram(libc: Libc, device: string, address: number, port: number): BoundSocket {
    const peer = sockaddrIn(address, port);
    return BoundSocket.#create(
      libc,
      SOCK_DGRAM | SOCK_NONBLOCK,
      device,
      (fd) => libc.connect(fd, peer, peer.length) >= 0,
    );
  }

  static #create(
    libc: Libc,
    type: number,
    device: string,
    configure: (fd: number) => boolean,
  ): BoundSocket {
    const kind = (type & SOCK_DGRAM) !== 0 ? "udp" : "tcp";
    const fd = libc.socket(AF_INET, type | SOCK_CLOEXEC, 0);
    if (fd < 0) throw new Error(`cannot open a ${kind} socket: errno ${errno(libc)}`);
    const name = cString(device);
    if (
      libc.setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, name, name.length) < 0 || !configure(fd)
    ) {
      const code = errno(libc);
      libc.close(fd);
      throw new Error(`cannot bind a ${kind} socket to ${device}: errno ${code}`);
    }
    return new BoundSocket(libc, fd);
  }

  /** Connects (a TCP handshake runs off the main thread; UDP only fixes the peer). */
  async connect(address: number, port: number): Promise<void> {
    const peer = sockaddrIn(address, port);
    const result = await this.libc.connectBlocking(this.fd, peer, peer.length);
    if (result < 0) throw new Error("connection failed or timed out");
  }

  /** Sends all of `bytes` on the connected socket. */
  send(bytes: Uint8Array): void {
    for (let off = 0; off < bytes.length;) {
      const rest = bytes.subarray(off);
      const n = Number(this.libc.sendto(this.fd, rest, BigInt(rest.length), 0, null, 0));
      if (n < 0) throw new Error(`send failed: errno ${errno(this.libc)}`);
      off += n;
    }
  }

  /** Receives a waiting datagram into `buffer` without waiting: its size, or -1 when none. */
  receiveNow(buffer: Uint8Array): number {
    return Number(this.libc.recv(this.fd, buffer, BigInt(buffer.length), 0));
  }

  /** Makes a receive blocked in another thread return at once (close would not wake it). */
  shutdown(): void {
    if (this.#open) this.libc.shutdown(this.fd, SHUT_RDWR);
  }

  /** Receives into `buffer`: the byte count, 0 at the end of a stream; throws on timeout. */
  async receive(buffer: Uint8Array): Promise<number> {
    const n = Number(await this.libc.recvBlocking(this.fd, buffer, BigInt(buffer.length), 0));
    if (n < 0) throw new Error("no data before the time limit");
    return n;
  }

  close(): void {
    if (!this.#open) return;
    this.#open = false;
    this.libc.close(this.fd);
  }
}
