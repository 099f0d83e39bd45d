/**
 * Linux TUN devices (docs/platform.md §2.1): open `/dev/net/tun` non-blocking, `TUNSETIFF` with
 * IFF_TUN|IFF_NO_PI (and IFF_VNET_HDR with offload). Address, MTU, link state and routes are set
 * over rtnetlink (rtnetlink.ts). The device and its routes vanish when the last file descriptor
 * closes, also after SIGKILL (docs/platform.md §2.4).
 */
import { cString, Errno, errno, type Libc } from "./libc.ts";

const O_RDWR = 0x2;
const O_NONBLOCK = 0x800;
const O_CLOEXEC = 0x80000;
const TUNSETIFF = 0x400454ca;
const IFF_TUN = 0x0001;
const IFF_NO_PI = 0x1000;
const IFF_VNET_HDR = 0x4000;
const TUNSETOFFLOAD = 0x400454d0;
const TUN_F_CSUM = 0x01;
const TUN_F_TSO4 = 0x02;
const IFNAMSIZ = 16;

/**
 * The name k8stun asks for: the kernel replaces `%d` with the lowest free number when it
 * creates the device (TUNSETIFF), atomically, so two k8stuns get `k8stun0` and `k8stun1` and
 * never one name — and `ip link` says whose the device is.
 */
export const TUN_NAME_TEMPLATE = "k8stun%d";

/** An error opening or configuring the TUN, with a message a user can act on. */
export class TunError extends Error {
  constructor(message: string, readonly errno: number) {
    super(message);
    this.name = "TunError";
  }
}

/** An opened TUN device (not yet configured: tun_device.ts does that). */
export interface OpenedTun {
  fd: number;
  name: string;
  /**
   * Every read and write carries a 10-byte virtio header, and the kernel exchanges TCP
   * super-packets with partial checksums (offload, docs/platform.md §2.3).
   */
  vnetHeader: boolean;
}

/** struct ifreq (40 bytes, docs/platform.md §2.1) with the name filled in. */
function ifreq(name: string): Uint8Array {
  const buf = new Uint8Array(40);
  const bytes = new TextEncoder().encode(name);
  if (bytes.length >= IFNAMSIZ) {
    throw new TunError(`interface name "${name}" is longer than 15 bytes`, Errno.EINVAL);
  }
  buf.set(bytes);
  return buf;
}

function explain(code: number, what: string): string {
  switch (code) {
    case Errno.EPERM:
    case Errno.EACCES:
      return `${what}: permission denied — run with sudo or grant CAP_NET_ADMIN (or use k8stun proxy, which needs no root)`;
    case Errno.ENOENT:
    case Errno.ENODEV:
      return `${what}: /dev/net/tun is missing — load the tun module (modprobe tun) or create the device node`;
    case Errno.EBUSY:
    case Errno.EEXIST:
      return `${what}: the interface name is already in use — stop the program that holds that device`;
    default:
      return `${what}: errno ${code}`;
  }
}

/**
 * Opens a TUN device (name empty = {@link TUN_NAME_TEMPLATE}: the kernel picks a free
 * `k8stunN`). With `offload`, asks for the virtio header and checksum + TCP segmentation offload,
 * and quietly does without when the kernel refuses them (the result says which).
 */
export function openTun(libc: Libc, name = "", options: { offload?: boolean } = {}): OpenedTun {
  name ||= TUN_NAME_TEMPLATE;
  if (options.offload) {
    const device = create(libc, name, IFF_TUN | IFF_NO_PI | IFF_VNET_HDR);
    if (libc.ioctlValue(device.fd, BigInt(TUNSETOFFLOAD), BigInt(TUN_F_CSUM | TUN_F_TSO4)) === 0) {
      return { ...device, vnetHeader: true };
    }
    libc.close(device.fd); // the device goes with its only descriptor; try again plainly
  }
  return { ...create(libc, name, IFF_TUN | IFF_NO_PI), vnetHeader: false };
}

function create(libc: Libc, name: string, flags: number): { fd: number; name: string } {
  const fd = libc.open(cString("/dev/net/tun"), O_RDWR | O_NONBLOCK | O_CLOEXEC, 0);
  if (fd < 0) throw new TunError(explain(errno(libc), "cannot open /dev/net/tun"), errno(libc));
  const req = ifreq(name);
  new DataView(req.buffer).setUint16(16, flags, true);
  if (libc.ioctl(fd, BigInt(TUNSETIFF), req) < 0) {
    const code = errno(libc);
    libc.close(fd);
    throw new TunError(explain(code, "cannot create the TUN device"), code);
  }
  const nul = req.indexOf(0);
  return { fd, name: new TextDecoder().decode(req.subarray(0, nul < 0 ? IFNAMSIZ : nul)) };
}
