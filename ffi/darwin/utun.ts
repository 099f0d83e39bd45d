/**
 * macOS utun, address, MTU and routes over FFI (docs/platform.md §4): the byte encoders of
 * ioctl.ts, utun_wire.ts and route_wire.ts wired to libSystem (libsystem.ts). A Linux machine
 * cannot load libSystem: here the encoders are tested byte for byte, and CI runs this file on
 * macOS (arm64 and x86_64, .github/workflows/ci.yml).
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
import type { Darwin } from "./libsystem.ts";

const AF_INET = 2;
const PF_ROUTE = 17;
const SOCK_DGRAM = 2;
const SOCK_RAW = 3;
const F_GETFL = 3;
const F_SETFL = 4;
const O_NONBLOCK = 0x4;
const ESRCH = 3;

/** Opens `utun<unit-1>` (unit 0: the first free one), non-blocking (docs/platform.md §4 steps 1–5). */
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

/** Address (point-to-point, peer = itself) and MTU (docs/platform.md §4); adding the address brings it up. */
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

/** RTM_ADD or RTM_DELETE over PF_ROUTE (docs/platform.md §4); deleting a route that is gone (ESRCH) is fine. */
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
