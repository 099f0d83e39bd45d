/**
 * The packet loop's sockets on Linux (core/net/device/loop_sockets.ts): non-blocking libc
 * sockets — TCP for relayed flows, device-bound UDP for forwarded DNS — watched through one epoll set, whose descriptor the loop polls beside the TUN and
 * its wake-up. Level-triggered, so a socket the loop did not finish reading wakes it again; the
 * loop changes what it watches as its buffers fill and drain (epoll(7)).
 */
import type { LoopSockets } from "../../core/net/device/loop_sockets.ts";
import type { SocketRegistry } from "../../core/net/device/socket_registry.ts";
import { BoundSocket, sockaddrIn } from "./bound_socket.ts";
import { errno, type Libc } from "./libc.ts";

const AF_INET = 2;
const SOCK_STREAM = 1;
const SOCK_NONBLOCK = 0x800;
const SOCK_CLOEXEC = 0x80000;
const IPPROTO_TCP = 6;
const TCP_NODELAY = 1;
const SOL_SOCKET = 1;
const SO_ERROR = 4;
const SHUT_WR = 1;
/** A write to a connection the peer reset fails with EPIPE instead of killing the process. */
const MSG_NOSIGNAL = 0x4000;
const EINPROGRESS = 115;
const EPOLL_CLOEXEC = 0x80000;
const EPOLL_CTL_ADD = 1;
const EPOLL_CTL_DEL = 2;
const EPOLL_CTL_MOD = 3;
const EPOLLIN = 0x1;
const EPOLLOUT = 0x4;
const EPOLLERR = 0x8;
const EPOLLHUP = 0x10;
/**
 * `struct epoll_event` is packed on x86_64 (u32 events, then u64 data at offset 4: 12 bytes)
 * and naturally aligned elsewhere (data at offset 8: 16 bytes).
 */
const EVENT_SIZE = Deno.build.arch === "x86_64" ? 12 : 16;
const DATA_OFFSET = Deno.build.arch === "x86_64" ? 4 : 8;
/** Ready sockets taken per look; the rest are still ready at the next one (level-triggered). */
const MAX_EVENTS = 256;
/** sizeof(struct sockaddr_in). */
const SOCKADDR_IN = 16;

export class LinuxLoopSockets implements LoopSockets {
  /** The epoll set: the loop polls it beside the device. */
  readonly fd: number;
  readonly #libc: Libc;
  /** Every socket opened and not closed yet. */
  readonly #open = new Set<number>();
  /** What each socket is watched for (EPOLLIN | EPOLLOUT bits); absent: not in the set yet. */
  readonly #watched = new Map<number, number>();
  readonly #event = new Uint8Array(EVENT_SIZE);
  readonly #eventView = new DataView(this.#event.buffer);
  readonly #events = new Uint8Array(EVENT_SIZE * MAX_EVENTS);
  readonly #eventsView = new DataView(this.#events.buffer);
  readonly #one = new Int32Array([1]);
  readonly #errorValue = new Int32Array(1);
  readonly #errorLength = new Uint32Array([4]);

  /** Where the sockets are recorded for the loop's owner (socket_registry.ts). */
  readonly #registry?: SocketRegistry;

  constructor(libc: Libc, registry?: SocketRegistry) {
    this.#libc = libc;
    this.#registry = registry;
    this.fd = libc.epoll_create1(EPOLL_CLOEXEC);
    if (this.fd < 0) throw new Error(`epoll_create1 failed: errno ${errno(libc)}`);
  }

  connect(address: number, port: number): number {
    const libc = this.#libc;
    const fd = libc.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno(libc);
    // The app's small writes go out at once, as every dialer's do (Nagle would hold one
    // behind the previous one's ACK).
    libc.setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, new Uint8Array(this.#one.buffer), 4);
    if (libc.connect(fd, sockaddrIn(address, port), SOCKADDR_IN) < 0) {
      const code = errno(libc);
      if (code !== EINPROGRESS) {
        libc.close(fd);
        return -code;
      }
    }
    this.#open.add(fd);
    this.#registry?.add(fd);
    return fd;
  }

  datagram(device: string, address: number, port: number): number {
    const { fd } = BoundSocket.datagram(this.#libc, device, address, port);
    this.#open.add(fd);
    this.#registry?.add(fd);
    return fd;
  }

  connectResult(fd: number): number {
    this.#errorLength[0] = 4;
    const failed = this.#libc.getsockopt(
      fd,
      SOL_SOCKET,
      SO_ERROR,
      new Uint8Array(this.#errorValue.buffer),
      new Uint8Array(this.#errorLength.buffer),
    ) < 0;
    if (failed) return -errno(this.#libc);
    return -this.#errorValue[0];
  }

  read(fd: number, into: Uint8Array): number {
    const n = Number(this.#libc.recv(fd, into, BigInt(into.length), 0));
    return n < 0 ? -errno(this.#libc) : n;
  }

  write(fd: number, bytes: Uint8Array): number {
    const n = Number(this.#libc.sendto(fd, bytes, BigInt(bytes.length), MSG_NOSIGNAL, null, 0));
    return n < 0 ? -errno(this.#libc) : n;
  }

  shutdownWrite(fd: number): void {
    this.#libc.shutdown(fd, SHUT_WR);
  }

  close(fd: number): void {
    if (!this.#open.delete(fd)) return;
    this.#registry?.remove(fd); // before the number can be reused
    this.#watched.delete(fd);
    this.#libc.close(fd); // the last reference: the kernel drops it from the epoll set
  }

  watch(fd: number, readable: boolean, writable: boolean): void {
    const events = (readable ? EPOLLIN : 0) | (writable ? EPOLLOUT : 0);
    const current = this.#watched.get(fd);
    if (current === events) return;
    if (events === 0) {
      // Out of the set: epoll reports errors and hang-ups whatever was asked, and a socket the
      // loop cannot serve now (its bytes wait for the app) would wake it again and again.
      if (current === undefined) return; // not in the set
      if (this.#libc.epoll_ctl(this.fd, EPOLL_CTL_DEL, fd, this.#event) < 0) {
        throw new Error(`epoll_ctl failed: errno ${errno(this.#libc)}`);
      }
      this.#watched.delete(fd);
      return;
    }
    this.#eventView.setUint32(0, events, true);
    this.#eventView.setUint32(DATA_OFFSET, fd, true);
    this.#eventView.setUint32(DATA_OFFSET + 4, 0, true);
    const op = current === undefined ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
    if (this.#libc.epoll_ctl(this.fd, op, fd, this.#event) < 0) {
      throw new Error(`epoll_ctl failed: errno ${errno(this.#libc)}`);
    }
    this.#watched.set(fd, events);
  }

  ready(visit: (fd: number, readable: boolean, writable: boolean) => void): void {
    // Nothing watched, nothing to ask: the loop's turns cost no system call for sockets while
    // no flow is dialed from the loop.
    if (this.#watched.size === 0) return;
    const n = this.#libc.epoll_wait(this.fd, this.#events, MAX_EVENTS, 0);
    for (let i = 0; i < n; i++) {
      const at = i * EVENT_SIZE;
      const events = this.#eventsView.getUint32(at, true);
      const fd = this.#eventsView.getUint32(at + DATA_OFFSET, true);
      // An error or hang-up shows as both: the read or write that follows says what happened.
      const failed = (events & (EPOLLERR | EPOLLHUP)) !== 0;
      visit(fd, failed || (events & EPOLLIN) !== 0, failed || (events & EPOLLOUT) !== 0);
    }
  }

  /** Closes every socket still open and the epoll set (the loop ends). */
  closeAll(): void {
    for (const fd of [...this.#open]) this.close(fd);
    this.#libc.close(this.fd);
  }
}
