/**
 * PF_ROUTE messages as bytes (platform-ffi.md §6.3, xnu `net/route.h`, `net/rtsock.c`): a
 * 92-byte `rt_msghdr`, then the sockaddrs named in `rtm_addrs` in increasing bit order, each
 * padded to 4 bytes. Written to the spec and tested byte for byte; not run on a Mac here.
 */
import { encodeSockaddrIn } from "./utun_wire.ts";

const RT_MSGHDR_SIZE = 92;
const RTM_VERSION = 5;
const RTM_ADD = 0x1;
const RTM_DELETE = 0x2;
const RTF_UP = 0x1;
const RTF_GATEWAY = 0x2;
const RTF_STATIC = 0x800;
const RTA_DST = 0x1;
const RTA_GATEWAY = 0x2;
const RTA_NETMASK = 0x4;
const AF_LINK = 18;

/** A route for a prefix: via the utun's own address, or straight to the interface index. */
export interface DarwinRoute {
  dst: number;
  prefix: number;
  via: { address: number } | { ifindex: number };
}

/** `sockaddr_dl` naming an interface by index (20 bytes). */
function sockaddrDl(ifindex: number): Uint8Array {
  const out = new Uint8Array(20);
  out[0] = 20;
  out[1] = AF_LINK;
  new DataView(out.buffer).setUint16(2, ifindex, true);
  return out;
}

const roundup4 = (n: number) => (n === 0 ? 4 : (n + 3) & ~3);

/** RTM_ADD or RTM_DELETE for `route` with sequence number `seq`. */
export function encodeRouteMessage(
  op: "add" | "delete",
  route: DarwinRoute,
  seq: number,
): Uint8Array {
  const mask = route.prefix === 0 ? 0 : (0xffffffff << (32 - route.prefix)) >>> 0;
  const viaGateway = "address" in route.via;
  const gateway = "address" in route.via
    ? encodeSockaddrIn(route.via.address)
    : sockaddrDl(route.via.ifindex);
  const addresses = [encodeSockaddrIn(route.dst), gateway, encodeSockaddrIn(mask)];
  const length = RT_MSGHDR_SIZE + addresses.reduce((sum, a) => sum + roundup4(a.length), 0);
  const out = new Uint8Array(length);
  const view = new DataView(out.buffer);
  view.setUint16(0, length, true);
  out[2] = RTM_VERSION;
  out[3] = op === "add" ? RTM_ADD : RTM_DELETE;
  view.setInt32(8, RTF_UP | RTF_STATIC | (viaGateway ? RTF_GATEWAY : 0), true);
  view.setInt32(12, RTA_DST | RTA_GATEWAY | RTA_NETMASK, true);
  view.setInt32(20, seq, true);
  let at = RT_MSGHDR_SIZE;
  for (const address of addresses) {
    out.set(address, at);
    at += roundup4(address.length);
  }
  return out;
}
