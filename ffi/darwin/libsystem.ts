/**
 * The libSystem calls k8stun makes on macOS (docs/platform.md §1.2–§1.4), declared for both CPUs.
 * Variadic functions (`ioctl`, `fcntl`) pass their variadic argument differently: in a register
 * on x86_64, on the stack on arm64 (Apple's ABI) — so on arm64 six 64-bit pads fill x2–x7 and the
 * argument spills to the stack, as a C caller's would. errno is read through `__error` right
 * after a call that failed, on the same thread.
 */
import { blockingSocketCalls } from "../blocking_calls.ts";
import { TunError } from "../linux/tun.ts";

/** Six 64-bit pads fill x2–x7 so the variadic argument spills to the stack on arm64 (docs/platform.md §1.2). */
const PADS = ["u64", "u64", "u64", "u64", "u64", "u64"] as const;

/** The declarations (exported for the tests that check the two CPUs' calling conventions). */
export const LIBSYSTEM_SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  /** `setsockopt(int, int level, int name, const void *, socklen_t)`: not variadic. */
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  send: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  /** Wakes a call blocked on the socket in another thread (close does not). */
  shutdown: { parameters: ["i32", "i32"], result: "i32" },
  /** Tells this process's routing-socket replies from everyone else's. */
  getpid: { parameters: [], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
  /** `int pipe(int fds[2])`: the packet loop's wake-up (macOS has no eventfd). */
  pipe: { parameters: ["buffer"], result: "i32" },
  /** `poll(struct pollfd *, nfds_t, int)`: nfds_t is an unsigned int on macOS. */
  poll: { parameters: ["buffer", "u32", "i32"], result: "i32" },
  memcpy: { parameters: ["buffer", "buffer", "usize"], result: "pointer" },
  getifaddrs: { parameters: ["buffer"], result: "i32" },
  freeifaddrs: { parameters: ["pointer"], result: "void" },
  if_nametoindex: { parameters: ["buffer"], result: "u32" },
  __error: { parameters: [], result: "pointer" },
  ...blockingSocketCalls("u32"),
  // Variadic ioctl/fcntl: fixed declarations on x86_64, padded ones on arm64 (docs/platform.md §1.2).
  ioctl: { parameters: ["i32", "u64", "buffer"], result: "i32" },
  ioctlArm64: { name: "ioctl", parameters: ["i32", "u64", ...PADS, "buffer"], result: "i32" },
  fcntl: { parameters: ["i32", "i32", "i64"], result: "i32" },
  fcntlArm64: { name: "fcntl", parameters: ["i32", "i32", ...PADS, "i64"], result: "i32" },
} as const;

type Symbols = Deno.DynamicLibrary<typeof LIBSYSTEM_SYMBOLS>["symbols"];

const P = [0n, 0n, 0n, 0n, 0n, 0n] as const;
const EPERM = 1;
const EEXIST = 17;

/** libSystem with the variadic calls made right for `arch` (this CPU by default). */
export class Darwin {
  readonly #lib: Deno.DynamicLibrary<typeof LIBSYSTEM_SYMBOLS>;
  readonly sym: Symbols;
  readonly #arm64: boolean;

  constructor(arch: typeof Deno.build.arch = Deno.build.arch) {
    this.#lib = Deno.dlopen("/usr/lib/libSystem.B.dylib", LIBSYSTEM_SYMBOLS);
    this.sym = this.#lib.symbols;
    this.#arm64 = arch === "aarch64";
  }

  ioctl(fd: number, request: number, arg: Uint8Array): number {
    return this.#arm64
      ? this.sym.ioctlArm64(fd, BigInt(request), ...P, arg)
      : this.sym.ioctl(fd, BigInt(request), arg);
  }

  fcntl(fd: number, command: number, arg: number): number {
    return this.#arm64
      ? this.sym.fcntlArm64(fd, command, ...P, BigInt(arg))
      : this.sym.fcntl(fd, command, BigInt(arg));
  }

  /** errno of the last failed call on this thread (`__error`, docs/platform.md §1.3). */
  errno(): number {
    const p = this.sym.__error();
    return p ? new Deno.UnsafePointerView(p).getInt32(0) : 0;
  }

  /** Throws a TunError for a failed call (result < 0), closing `fd` first if given. */
  check(result: number | bigint, what: string, fd?: number): void {
    if (result >= 0) return;
    const code = this.errno();
    if (fd !== undefined) this.sym.close(fd);
    throw new TunError(explain(code, what), code);
  }

  close(): void {
    this.#lib.close();
  }
}

function explain(code: number, what: string): string {
  switch (code) {
    case EPERM:
      return `cannot ${what}: permission denied — run with sudo`;
    case EEXIST:
      return `cannot ${what}: it already exists — another VPN or an earlier k8stun owns it (see netstat -rn)`;
    default:
      return `cannot ${what}: errno ${code}`;
  }
}
