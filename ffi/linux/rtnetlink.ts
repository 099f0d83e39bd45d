/**
 * Device routes over an rtnetlink socket (docs/platform.md §3.2–docs/platform.md §2.2): one request, one ack,
 * matched by sequence number. Routes that point into k8stun's TUN need no crash cleanup: the
 * kernel drops them with the device (docs/platform.md §2.4). The socket is blocking (the kernel answers within
 * microseconds), with a 2 s receive timeout so a lost ack cannot hang the program.
 */
import {
  decodeAcks,
  decodeRouteDump,
  type DeviceRoute,
  type DumpedRoute,
  encodeLinkUp,
  encodeNewAddress,
  encodeRoute,
  encodeRouteDump,
  encodeRule,
  encodeSetMtu,
  encodeSetTxQueueLength,
  type PolicyRule,
} from "./netlink_wire.ts";
import { cString, Errno, errno, type Libc } from "./libc.ts";
import { TunError } from "./tun.ts";

const AF_NETLINK = 16;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0x80000;
const NETLINK_ROUTE = 0;
const SOL_SOCKET = 1;
const SO_RCVTIMEO = 20;

/** An open rtnetlink socket. */
export class RouteTable {
  #seq = 0;
  readonly #reply = new Uint8Array(64 * 1024);

  private constructor(readonly libc: Libc, readonly fd: number) {}

  /** Opens and binds the socket; the kernel answers within microseconds, so reads block. */
  static open(libc: Libc): RouteTable {
    const fd = libc.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0) throw new TunError(explain(errno(libc), "open an rtnetlink socket"), errno(libc));
    const address = new Uint8Array(12); // sockaddr_nl: family, pad, pid 0 (kernel picks), groups 0
    new DataView(address.buffer).setUint16(0, AF_NETLINK, true);
    const timeout = new BigInt64Array([2n, 0n]); // struct timeval: never wait for ever
    if (
      libc.bind(fd, address, address.length) < 0 ||
      libc.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, new Uint8Array(timeout.buffer), 16) < 0
    ) {
      const code = errno(libc);
      libc.close(fd);
      throw new TunError(explain(code, "bind the rtnetlink socket"), code);
    }
    return new RouteTable(libc, fd);
  }

  /** Adds `dst/prefix dev ifindex` (proto static, scope link); EEXIST if it is there already. */
  add(route: DeviceRoute): void {
    const code = this.request((seq) => encodeRoute("add", route, seq));
    if (code !== 0) throw new TunError(explain(code, `add the route ${describe(route)}`), code);
  }

  /**
   * Sets the MTU and the transmit queue length, adds `address` as /32 and brings the link up
   * (docs/platform.md §3.3).
   */
  configureLink(ifindex: number, address: number, mtu: number, txQueueLength: number): void {
    const steps: [string, (seq: number) => Uint8Array][] = [
      [`set the MTU ${mtu}`, (seq) => encodeSetMtu(ifindex, mtu, seq)],
      [
        `set the transmit queue length ${txQueueLength}`,
        (seq) => encodeSetTxQueueLength(ifindex, txQueueLength, seq),
      ],
      ["add the address", (seq) => encodeNewAddress({ address, prefix: 32, ifindex }, seq)],
      ["bring the link up", (seq) => encodeLinkUp(ifindex, seq)],
    ];
    for (const [what, encode] of steps) {
      const code = this.request(encode);
      if (code !== 0) throw new TunError(explain(code, `${what} of interface ${ifindex}`), code);
    }
  }

  /** Deletes the route; one that is already gone (ESRCH) is fine. */
  delete(route: DeviceRoute): void {
    const code = this.request((seq) => encodeRoute("delete", route, seq));
    if (code !== 0 && code !== Errno.ESRCH) {
      throw new TunError(explain(code, `delete the route ${describe(route)}`), code);
    }
  }

  /** Adds a policy routing rule; returns the errno of the ack (0 = added). */
  addRule(rule: PolicyRule): number {
    return this.request((seq) => encodeRule("add", rule, seq));
  }

  /** Deletes a policy routing rule; one that is already gone (ENOENT) is fine. */
  deleteRule(rule: PolicyRule): void {
    const code = this.request((seq) => encodeRule("delete", rule, seq));
    if (code !== 0 && code !== Errno.ENOENT) {
      throw new TunError(explain(code, "delete a policy routing rule"), code);
    }
  }

  /** Every IPv4 route of every table (a dump may span several reads). */
  routes(): DumpedRoute[] {
    const seq = ++this.#seq;
    const message = encodeRouteDump(seq);
    if (Number(this.libc.sendto(this.fd, message, BigInt(message.length), 0, null, 0)) < 0) {
      throw new TunError(explain(errno(this.libc), "list the routes"), errno(this.libc));
    }
    const routes: DumpedRoute[] = [];
    for (;;) {
      const n = Number(this.libc.recv(this.fd, this.#reply, BigInt(this.#reply.length), 0));
      if (n < 0) throw new TunError(explain(errno(this.libc), "list the routes"), errno(this.libc));
      const part = decodeRouteDump(this.#reply.subarray(0, n), seq);
      routes.push(...part.routes);
      if (part.errno !== 0) throw new TunError(explain(part.errno, "list the routes"), part.errno);
      if (part.done) return routes;
    }
  }

  close(): void {
    this.libc.close(this.fd);
  }

  /**
   * Sends one request (any encoder of netlink_wire.ts, given the next sequence number) and
   * returns the errno of its ack: 0 = done. Acks of other sequence numbers are skipped.
   */
  request(encode: (seq: number) => Uint8Array): number {
    const seq = ++this.#seq;
    const message = encode(seq);
    if (Number(this.libc.sendto(this.fd, message, BigInt(message.length), 0, null, 0)) < 0) {
      return errno(this.libc);
    }
    for (;;) {
      const n = Number(this.libc.recv(this.fd, this.#reply, BigInt(this.#reply.length), 0));
      if (n < 0) return errno(this.libc);
      const ack = decodeAcks(this.#reply.subarray(0, n)).find((a) => a.seq === seq);
      if (ack) return ack.errno;
    }
  }
}

/**
 * The interface index of a device, asked of the kernel (`if_nametoindex`, docs/platform.md §2.1) rather than read
 * from /sys/class/net, which shows the namespace sysfs was mounted in (after `unshare -n`, the
 * host's).
 */
export function interfaceIndex(name: string, libc: Libc): number {
  const index = libc.if_nametoindex(cString(name));
  if (index === 0) {
    throw new TunError(`the interface ${name} does not exist (the TUN vanished?)`, Errno.ENODEV);
  }
  return index;
}

function describe(route: DeviceRoute): string {
  const d = route.dst;
  return `${d >>> 24}.${(d >>> 16) & 255}.${(d >>> 8) & 255}.${d & 255}/${route.prefix}`;
}

/** Messages for the errors of docs/platform.md §3.5 a user can act on. */
function explain(code: number, what: string): string {
  switch (code) {
    case Errno.EPERM:
    case Errno.EACCES:
      return `cannot ${what}: permission denied — run with sudo or grant CAP_NET_ADMIN`;
    case Errno.EEXIST:
      return `cannot ${what}: a route for it already exists — another VPN or an earlier k8stun owns it (see ip route)`;
    case Errno.ENODEV:
      return `cannot ${what}: the device is gone (the TUN vanished)`;
    case Errno.EAGAIN:
      return `cannot ${what}: the kernel did not answer within 2 s`;
    default:
      return `cannot ${what}: errno ${code}`;
  }
}

/** The name of an interface index, or `#<index>` when it is gone. */
export function interfaceName(index: number, libc: Libc): string {
  const name = new Uint8Array(16); // IF_NAMESIZE
  if (libc.if_indextoname(index, name) === null) return `#${index}`;
  return new TextDecoder().decode(name.subarray(0, name.indexOf(0)));
}

/** rtm_type values that are not an interface (docs/platform.md §3.2). */
const ROUTE_KINDS: Record<number, string> = { 6: "blackhole", 7: "unreachable", 8: "prohibit" };

/**
 * Every IPv4 destination routed anywhere on this machine (all tables, so policy-routed VPNs
 * and proxies count), with the interface or kind that owns it.
 */
export function routedRanges(libc: Libc): { dst: number; prefix: number; owner: string }[] {
  const table = RouteTable.open(libc);
  try {
    return table.routes().map((route) => ({
      dst: route.dst,
      prefix: route.prefix,
      owner: ROUTE_KINDS[route.type] ??
        (route.ifindex !== undefined ? interfaceName(route.ifindex, libc) : `table ${route.table}`),
    }));
  } finally {
    table.close();
  }
}
