/**
 * macOS utun, address, MTU and routes over FFI (platform-ffi.md §6, §2.4–§2.6): the byte
 * encoders of ioctl.ts, utun_wire.ts and route_wire.ts wired to libSystem. Spec only: this Linux
 * machine cannot load libSystem, so this file is type-checked and never run here — run it on a
 * Mac (both arm64 and x86_64) before relying on it.
 */
import { CTLIOCGINFO, SIOCAIFADDR, SIOCSIFMTU } from "./ioctl.ts";
import { type DarwinRoute, encodeRouteMessage } from "./route_wire.ts";
import {
  decodeCtlId,
  encodeCtlInfo,
  encodeIfreqMtu,
  encodeInAliasReq,
  encodeSockaddrCtl,
  PF_SYSTEM,
  SYSPROTO_CONTROL,
  UTUN_OPT_IFNAME,
} from "./utun_wire.ts";
import { TunError } from "../linux/tun.ts";

const AF_INET = 2;
const PF_ROUTE = 17;
const SOCK_DGRAM = 2;
const SOCK_RAW = 3;
const F_GETFL = 3;
const F_SETFL = 4;
const O_NONBLOCK = 0x4;
const EPERM = 1;
const ESRCH = 3;
const EEXIST = 17;

/** Six 64-bit pads fill x2–x7 so the variadic argument spills to the stack on arm64 (§2.4). */
const PADS = ["u64", "u64", "u64", "u64", "u64", "u64"] as const;

const SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
  __error: { parameters: [], result: "pointer" },
  // Variadic ioctl/fcntl: fixed declarations on x86_64, padded ones on arm64 (§2.4).
  ioctl: { parameters: ["i32", "u64", "buffer"], result: "i32" },
  ioctlArm64: { name: "ioctl", parameters: ["i32", "u64", ...PADS, "buffer"], result: "i32" },
  fcntl: { parameters: ["i32", "i32", "i64"], result: "i32" },
  fcntlArm64: { name: "fcntl", parameters: ["i32", "i32", ...PADS, "i64"], result: "i32" },
} as const;

type LibSystem = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

const ARM64 = Deno.build.arch === "aarch64";
const P = [0n, 0n, 0n, 0n, 0n, 0n] as const;

/** libSystem with the variadic calls made right for this CPU. */
export class Darwin {
  readonly #lib = Deno.dlopen("/usr/lib/libSystem.B.dylib", SYMBOLS);
  readonly sym: LibSystem = this.#lib.symbols;

  ioctl(fd: number, request: number, arg: Uint8Array): number {
    return ARM64
      ? this.sym.ioctlArm64(fd, BigInt(request), ...P, arg)
      : this.sym.ioctl(fd, BigInt(request), arg);
  }

  fcntl(fd: number, command: number, arg: number): number {
    return ARM64
      ? this.sym.fcntlArm64(fd, command, ...P, BigInt(arg))
      : this.sym.fcntl(fd, command, BigInt(arg));
  }

  /** errno of the last failed call on this thread (`__error`, §2.5). */
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

/** Opens `utun<unit-1>` (unit 0: the first free one), non-blocking (§6.1 steps 1–5). */
export function openUtun(os: Darwin, unit = 0): { fd: number; name: string } {
  const fd = os.sym.socket(PF_SYSTEM, SOCK_DGRAM, SYSPROTO_CONTROL);
  os.check(fd, "open a kernel-control socket");
  const info = encodeCtlInfo();
  os.check(os.ioctl(fd, CTLIOCGINFO, info), "look up the utun control", fd);
  const address = encodeSockaddrCtl(decodeCtlId(info), unit);
  os.check(os.sym.connect(fd, address, address.length), "create the utun", fd);
  const name = new Uint8Array(16);
  const length = new Uint32Array([name.length]);
  os.check(
    os.sym.getsockopt(fd, SYSPROTO_CONTROL, UTUN_OPT_IFNAME, name, new Uint8Array(length.buffer)),
    "read the utun's name",
    fd,
  );
  const flags = os.fcntl(fd, F_GETFL, 0);
  os.check(flags, "read the utun's flags", fd);
  os.check(os.fcntl(fd, F_SETFL, flags | O_NONBLOCK), "make the utun non-blocking", fd);
  const text = new TextDecoder().decode(name.subarray(0, Math.max(0, length[0] - 1)));
  return { fd, name: text };
}

/** Address (point-to-point, peer = itself) and MTU (§6.2); adding the address brings it up. */
export function configureUtun(
  os: Darwin,
  name: string,
  address: number,
  prefix: number,
  mtu: number,
): void {
  const sock = os.sym.socket(AF_INET, SOCK_DGRAM, 0);
  os.check(sock, "open a configuration socket");
  try {
    const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
    os.check(os.ioctl(sock, SIOCAIFADDR, encodeInAliasReq(name, address, mask)), "set the address");
    os.check(os.ioctl(sock, SIOCSIFMTU, encodeIfreqMtu(name, mtu)), `set MTU ${mtu}`);
  } finally {
    os.sym.close(sock);
  }
}

/** RTM_ADD or RTM_DELETE over PF_ROUTE (§6.3); deleting a route that is gone (ESRCH) is fine. */
export function changeRoute(os: Darwin, op: "add" | "delete", route: DarwinRoute): void {
  const sock = os.sym.socket(PF_ROUTE, SOCK_RAW, 0);
  os.check(sock, "open a routing socket");
  try {
    const message = encodeRouteMessage(op, route, 1);
    const written = os.sym.write(sock, message, BigInt(message.length));
    if (written < 0 && !(op === "delete" && os.errno() === ESRCH)) {
      const d = route.dst;
      const text = `${d >>> 24}.${(d >>> 16) & 255}.${(d >>> 8) & 255}.${d & 255}/${route.prefix}`;
      os.check(written, `${op} the route ${text}`);
    }
  } finally {
    os.sym.close(sock);
  }
}
