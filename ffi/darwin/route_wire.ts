/**
 * PF_ROUTE messages as bytes (docs/platform.md §4, xnu `net/route.h`, `net/rtsock.c`): a
 * 92-byte `rt_msghdr`, then the sockaddrs named in `rtm_addrs` in increasing bit order, each
 * padded to 4 bytes. RTM_ADD and RTM_DELETE change routes; RTM_GET asks which interface reaches
 * an address (what `route -n get` prints), and its reply is read here. Written to the spec and
 * tested byte for byte; not run on a Mac here.
 */
import { encodeSockaddrIn } from "./utun_wire.ts";

const RT_MSGHDR_SIZE = 92;
const RTM_VERSION = 5;
const RTM_ADD = 0x1;
const RTM_DELETE = 0x2;
const RTM_GET = 0x4;
const RTF_UP = 0x1;
const RTF_GATEWAY = 0x2;
const RTF_HOST = 0x4;
const RTF_STATIC = 0x800;
const RTA_DST = 0x1;
const RTA_GATEWAY = 0x2;
const RTA_NETMASK = 0x4;
const RTA_IFP = 0x10;
/** RTAX_MAX in xnu: the address bits a message can carry. */
const RTAX_MAX = 8;
const AF_LINK = 18;
const SOCKADDR_DL_SIZE = 20;
/** `sockaddr_dl`: the interface index at 2, the name's length at 5, the name from 8. */
const SDL_INDEX = 2;
const SDL_NLEN = 5;
const SDL_DATA = 8;

/** A route for a prefix: via the utun's own address, or straight to the interface index. */
export interface DarwinRoute {
  dst: number;
  prefix: number;
  via: { address: number } | { ifindex: number };
}

/** `sockaddr_dl` naming an interface by index (20 bytes); index 0 asks for one. */
function sockaddrDl(ifindex: number): Uint8Array {
  const out = new Uint8Array(SOCKADDR_DL_SIZE);
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

/**
 * RTM_GET for the route to host `address`, asking for its interface (RTA_IFP, an empty
 * `sockaddr_dl`) as `route -n get` does: 92 + 16 + 20 = 128 bytes.
 */
export function encodeRouteGet(address: number, seq: number, pid: number): Uint8Array {
  const addresses = [encodeSockaddrIn(address), sockaddrDl(0)];
  const length = RT_MSGHDR_SIZE + addresses.reduce((sum, a) => sum + roundup4(a.length), 0);
  const out = new Uint8Array(length);
  const view = new DataView(out.buffer);
  view.setUint16(0, length, true);
  out[2] = RTM_VERSION;
  out[3] = RTM_GET;
  view.setInt32(8, RTF_UP | RTF_HOST, true);
  view.setInt32(12, RTA_DST | RTA_IFP, true);
  view.setInt32(16, pid, true);
  view.setInt32(20, seq, true);
  let at = RT_MSGHDR_SIZE;
  for (const address of addresses) {
    out.set(address, at);
    at += roundup4(address.length);
  }
  return out;
}

/** The interface a route leaves by. */
export interface RouteInterface {
  name: string;
  ifindex: number;
}

/**
 * The interface in the kernel's reply to {@link encodeRouteGet}: `undefined` when `message` is
 * another message on the routing socket (every such socket sees every route change; ours is
 * RTM_GET with our pid and seq). Throws when our reply is malformed or carries an error.
 */
export function decodeRouteGetReply(
  message: Uint8Array,
  seq: number,
  pid: number,
): RouteInterface | undefined {
  if (message.length < RT_MSGHDR_SIZE) return undefined;
  const view = new DataView(message.buffer, message.byteOffset, message.length);
  if (
    message[2] !== RTM_VERSION || message[3] !== RTM_GET || view.getInt32(16, true) !== pid ||
    view.getInt32(20, true) !== seq
  ) return undefined;
  const length = view.getUint16(0, true);
  if (length < RT_MSGHDR_SIZE || length > message.length) {
    throw new Error(`the route reply says ${length} bytes but ${message.length} arrived`);
  }
  const error = view.getInt32(24, true);
  if (error !== 0) throw new Error(`the route lookup failed: errno ${error}`);
  const addrs = view.getInt32(12, true);
  let at = RT_MSGHDR_SIZE;
  for (let bit = 0; bit < RTAX_MAX; bit++) {
    if ((addrs & (1 << bit)) === 0) continue;
    if (at >= length) throw new Error("the route reply ends before its addresses");
    const size = message[at];
    if (at + roundup4(size) > length) throw new Error("a route reply address overruns it");
    if (1 << bit === RTA_IFP) return decodeSockaddrDl(message.subarray(at, at + size));
    at += roundup4(size);
  }
  throw new Error("the route reply names no interface");
}

function decodeSockaddrDl(sdl: Uint8Array): RouteInterface {
  if (sdl.length < SDL_DATA || sdl[1] !== AF_LINK) {
    throw new Error("the route reply's interface is not a link address");
  }
  const nameLength = sdl[SDL_NLEN];
  if (nameLength === 0 || SDL_DATA + nameLength > sdl.length) {
    throw new Error("the route reply's interface has no name");
  }
  return {
    name: new TextDecoder().decode(sdl.subarray(SDL_DATA, SDL_DATA + nameLength)),
    ifindex: new DataView(sdl.buffer, sdl.byteOffset).getUint16(SDL_INDEX, true),
  };
}
