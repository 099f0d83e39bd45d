/**
 * A UDP or TCP socket bound to one network device (`SO_BINDTODEVICE`, needs CAP_NET_RAW): its
 * route lookups only see that device's routes, so traffic to an address k8stun has routed into
 * its TUN still leaves through the original interface (how `tun_route` DNS reaches the real
 * resolvers without looping). Waiting calls run on Deno's blocking-call threads; receive and send
 * limits come from SO_RCVTIMEO/SO_SNDTIMEO, so no call waits for ever.
 */
import { cString, errno, type Libc } from "./libc.ts";

const AF_INET = 2;
const SOCK_STREAM = 1;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0x80000;
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

  /** Opens a socket bound to `device`; every receive or send waits at most `timeoutMs`. */
  static open(libc: Libc, kind: "udp" | "tcp", device: string, timeoutMs: number): BoundSocket {
    const fd = libc.socket(AF_INET, (kind === "udp" ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0);
    if (fd < 0) throw new Error(`cannot open a ${kind} socket: errno ${errno(libc)}`);
    const name = cString(device);
    const timeval = new Uint8Array(
      new BigInt64Array([
        BigInt(Math.floor(timeoutMs / 1000)),
        BigInt((timeoutMs % 1000) * 1000),
      ]).buffer,
    );
    if (
      libc.setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, name, name.length) < 0 ||
      libc.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, timeval, 16) < 0 ||
      libc.setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, timeval, 16) < 0
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
