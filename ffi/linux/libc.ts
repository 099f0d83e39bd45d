/**
 * The libc symbols k8stun calls on Linux (docs/platform.md §1). Fixed-arity declarations of the
 * variadic `open`/`ioctl` are correct on x86_64 and aarch64 Linux (docs/platform.md §1.2). errno is read through
 * `__errno_location` right after a call that failed (docs/platform.md §1.3), on the same thread.
 */
import { blockingSocketCalls } from "../blocking_calls.ts";

const SYMBOLS = {
  open: { parameters: ["buffer", "i32", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  /** Copies into or out of SharedArrayBuffer views at memcpy speed (see copyBytes). */
  memcpy: { parameters: ["buffer", "buffer", "usize"], result: "pointer" },
  ioctl: { parameters: ["i32", "u64", "buffer"], result: "i32" },
  /** ioctl with an integer argument passed by value (TUNSETOFFLOAD). */
  ioctlValue: { name: "ioctl", parameters: ["i32", "u64", "u64"], result: "i32" },
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  /** A connected pair of sockets (tests stand one in for a TUN: one packet per message). */
  socketpair: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  /** The host's interface addresses as a linked list (local_addresses.ts), and its release. */
  getifaddrs: { parameters: ["buffer"], result: "i32" },
  freeifaddrs: { parameters: ["pointer"], result: "void" },
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32" },
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  sendto: { parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"], result: "isize" },
  recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  /** A datagram and its sender's address (a UDP server's receive). */
  recvfrom: {
    parameters: ["i32", "buffer", "usize", "i32", "buffer", "buffer"],
    result: "isize",
  },
  /** The address a socket was bound to (the port the kernel picked for port 0). */
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  /** A UDP connect only fixes the peer (no packet, no wait). */
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  /** Wakes a call blocked on the socket in another thread (close does not). */
  shutdown: { parameters: ["i32", "i32"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  /** Name to ifindex in the caller's network namespace (0 = no such device, docs/platform.md §2.1). */
  if_nametoindex: { parameters: ["buffer"], result: "u32" },
  /** Ifindex to name (NULL when there is no such device). */
  if_indextoname: { parameters: ["u32", "buffer"], result: "pointer" },
  /** The packet loop's relayed sockets (loop_sockets.ts) are watched through one epoll set. */
  epoll_create1: { parameters: ["i32"], result: "i32" },
  epoll_ctl: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  epoll_wait: { parameters: ["i32", "buffer", "i32", "i32"], result: "i32" },
  ...blockingSocketCalls("u64"),
  __errno_location: { parameters: [], result: "pointer" },
} as const;

/** The opened library. */
export type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/** Opens glibc (Deno's Linux builds are glibc-linked, docs/platform.md §1.4). */
export function openLibc(): { symbols: Libc; close(): void } {
  const lib = Deno.dlopen("libc.so.6", SYMBOLS);
  return { symbols: lib.symbols, close: () => lib.close() };
}

/** errno of the last failed call on this thread. */
export function errno(libc: Libc): number {
  const p = libc.__errno_location();
  return p ? new Deno.UnsafePointerView(p).getInt32(0) : 0;
}

/** Linux errno numbers used in messages (errno.h). */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  EINTR: 4,
  EBADF: 9,
  EAGAIN: 11,
  EACCES: 13,
  EBUSY: 16,
  EEXIST: 17,
  ENODEV: 19,
  EINVAL: 22,
  ESRCH: 3,
  EADDRINUSE: 98,
  EADDRNOTAVAIL: 99,
  ENETUNREACH: 101,
  ENOBUFS: 105,
} as const;

/** Below this, `set` is as fast as a call into libc. */
const MEMCPY_THRESHOLD = 512;

/**
 * A copy for SharedArrayBuffer views. V8 copies into or out of shared memory byte by byte when
 * the two offsets differ in alignment (a packet's payload starts at an odd offset) — measured 6×
 * slower than libc's memcpy here, and the biggest cost of the packet loop before this. macOS's
 * libSystem has the same `memcpy` (ffi/darwin/libsystem.ts).
 */
export function copyBytes(
  libc: Pick<Libc, "memcpy">,
): (dst: Uint8Array, src: Uint8Array) => void {
  return (dst, src) => {
    if (src.length < MEMCPY_THRESHOLD) return dst.set(src);
    // What `set` would throw: memcpy past the end would corrupt the heap instead.
    if (src.length > dst.length) throw new RangeError(`copy of ${src.length} into ${dst.length}`);
    libc.memcpy(dst, src, BigInt(src.length));
  };
}

/** A NUL-terminated copy of a string for `buffer` parameters. */
export function cString(text: string): Uint8Array {
  const bytes = new TextEncoder().encode(text);
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  return out;
}
