/**
 * A UDP or TCP socket bound to one interface on macOS by `IP_BOUND_IF` (xnu `netinet/in.h`,
 * IPPROTO_IP option 25, an `int` interface index): its route lookups are scoped to that
 * interface, so packets to an address k8stun has routed into its utun still leave through the
 * interface that reached it before — how `tun_route` DNS reaches the real resolvers without
 * looping. The macOS twin of ffi/linux/bound_socket.ts (SO_BINDTODEVICE there), with the same
 * shape: a TCP socket waits on Deno's blocking-call threads, its receive and send limits from
 * SO_RCVTIMEO/SO_SNDTIMEO; a UDP socket is non-blocking and connected, so the kernel delivers
 * only datagrams from its peer (RFC 5452 §9.1). Written to the spec; the options are tested byte
 * for byte here, the calls run on a Mac.
 */
import type { Darwin } from "./libsystem.ts";
import { encodeSockaddrIn } from "./utun_wire.ts";

const AF_INET = 2;
const SOCK_STREAM = 1;
const SOCK_DGRAM = 2;
const IPPROTO_IP = 0;
const IP_BOUND_IF = 25;
const SOL_SOCKET = 0xffff;
const SO_SNDTIMEO = 0x1005;
const SO_RCVTIMEO = 0x1006;
const F_SETFD = 2;
const FD_CLOEXEC = 1;
const F_GETFL = 3;
const F_SETFL = 4;
const O_NONBLOCK = 0x4;
const SHUT_RDWR = 2;

/** One setsockopt call: level, option name and the bytes of its value. */
export interface SocketOption {
  level: number;
  name: number;
  value: Uint8Array;
}

/** `IP_BOUND_IF`: the interface index as a C `int` (4 bytes, little-endian on arm64 and x86_64). */
export function boundInterfaceOption(ifindex: number): SocketOption {
  if (!Number.isInteger(ifindex) || ifindex <= 0 || ifindex > 0xffff) {
    throw new RangeError(`${ifindex} is not an interface index`);
  }
  const value = new Uint8Array(4);
  new DataView(value.buffer).setInt32(0, ifindex, true);
  return { level: IPPROTO_IP, name: IP_BOUND_IF, value };
}

/**
 * `struct timeval` on macOS for both CPUs: `time_t tv_sec` (8 bytes), `suseconds_t tv_usec` (a
 * 32-bit int), padded to 16 bytes.
 */
export function encodeTimeval(ms: number): Uint8Array {
  const out = new Uint8Array(16);
  const view = new DataView(out.buffer);
  view.setBigInt64(0, BigInt(Math.floor(ms / 1000)), true);
  view.setInt32(8, Math.floor(ms % 1000) * 1000, true);
  return out;
}

/** The options of a TCP socket bound to `ifindex` whose calls wait at most `timeoutMs`. */
export function streamOptions(ifindex: number, timeoutMs: number): SocketOption[] {
  const timeval = encodeTimeval(timeoutMs);
  return [
    boundInterfaceOption(ifindex),
    { level: SOL_SOCKET, name: SO_RCVTIMEO, value: timeval },
    { level: SOL_SOCKET, name: SO_SNDTIMEO, value: timeval },
  ];
}

/** An open, interface-bound socket (the interface of ffi/linux/bound_socket.ts's BoundSocket). */
export class DarwinBoundSocket {
  #open = true;

  private constructor(readonly os: Darwin, readonly fd: number) {}

  /** Opens a TCP socket bound to `ifindex`; every receive or send waits at most `timeoutMs`. */
  static stream(os: Darwin, ifindex: number, timeoutMs: number): DarwinBoundSocket {
    return DarwinBoundSocket.#create(os, SOCK_STREAM, streamOptions(ifindex, timeoutMs));
  }

  /**
   * Opens a non-blocking UDP socket bound to `ifindex` and connected to `address:port`: the
   * kernel picks a random source port (RFC 5452 §9.2) and drops datagrams from anyone else.
   */
  static datagram(os: Darwin, ifindex: number, address: number, port: number): DarwinBoundSocket {
    const socket = DarwinBoundSocket.#create(os, SOCK_DGRAM, [boundInterfaceOption(ifindex)]);
    try {
      const flags = os.fcntl(socket.fd, F_GETFL, 0);
      os.check(flags, "read a UDP socket's flags");
      os.check(os.fcntl(socket.fd, F_SETFL, flags | O_NONBLOCK), "make a UDP socket non-blocking");
      const peer = encodeSockaddrIn(address, port);
      os.check(os.sym.connect(socket.fd, peer, peer.length), "connect a UDP socket");
    } catch (error) {
      socket.close();
      throw error;
    }
    return socket;
  }

  static #create(os: Darwin, type: number, options: SocketOption[]): DarwinBoundSocket {
    const kind = type === SOCK_DGRAM ? "UDP" : "TCP";
    const fd = os.sym.socket(AF_INET, type, 0);
    os.check(fd, `open a ${kind} socket`);
    os.check(os.fcntl(fd, F_SETFD, FD_CLOEXEC), `set up a ${kind} socket`, fd);
    for (const { level, name, value } of options) {
      os.check(
        os.sym.setsockopt(fd, level, name, value, value.length),
        `bind a ${kind} socket to its interface`,
        fd,
      );
    }
    return new DarwinBoundSocket(os, fd);
  }

  /** Connects (a TCP handshake runs off the main thread). */
  async connect(address: number, port: number): Promise<void> {
    const peer = encodeSockaddrIn(address, port);
    const result = await this.os.sym.connectBlocking(this.fd, peer, peer.length);
    if (result < 0) throw new Error("connection failed or timed out");
  }

  /** Sends all of `bytes` on the connected socket. */
  send(bytes: Uint8Array): void {
    for (let off = 0; off < bytes.length;) {
      const rest = bytes.subarray(off);
      const n = Number(this.os.sym.send(this.fd, rest, BigInt(rest.length), 0));
      if (n < 0) throw new Error(`send failed: errno ${this.os.errno()}`);
      off += n;
    }
  }

  /** Receives a waiting datagram into `buffer` without waiting: its size, or -1 when none. */
  receiveNow(buffer: Uint8Array): number {
    return Number(this.os.sym.recv(this.fd, buffer, BigInt(buffer.length), 0));
  }

  /** Makes a receive blocked in another thread return at once (close would not wake it). */
  shutdown(): void {
    if (this.#open) this.os.sym.shutdown(this.fd, SHUT_RDWR);
  }

  /** Receives into `buffer`: the byte count, 0 at the end of a stream; throws on timeout. */
  async receive(buffer: Uint8Array): Promise<number> {
    const n = Number(await this.os.sym.recvBlocking(this.fd, buffer, BigInt(buffer.length), 0));
    if (n < 0) throw new Error("no data before the time limit");
    return n;
  }

  close(): void {
    if (!this.#open) return;
    this.#open = false;
    this.os.sym.close(this.fd);
  }
}
