/**
 * rtnetlink messages for IPv4 routes, as bytes (platform-ffi.md §5.2–§5.6): `nlmsghdr` (16
 * bytes), `rtmsg` (12 bytes) and route attributes padded to 4 bytes; and the kernel's acks
 * (`NLMSG_ERROR` carrying −errno, §5.4). Host byte order is little-endian (x86_64, aarch64);
 * addresses are in network order.
 */

const NLMSG_HDRLEN = 16;
const NLMSG_ERROR = 2;
const RTM_NEWROUTE = 24;
const RTM_DELROUTE = 25;
const NLM_F_REQUEST = 0x1;
const NLM_F_ACK = 0x4;
const NLM_F_EXCL = 0x200;
const NLM_F_CREATE = 0x400;
const AF_INET = 2;
const RT_TABLE_MAIN = 254;
const RTPROT_STATIC = 4;
const RT_SCOPE_LINK = 253;
const RTN_UNICAST = 1;
const RTA_DST = 1;
const RTA_OIF = 4;

/** An IPv4 device route: `dst/prefix dev <ifindex>`. */
export interface DeviceRoute {
  /** Destination network, as a 32-bit number (198.18.0.0 = 0xc6120000). */
  dst: number;
  prefix: number;
  ifindex: number;
}

const align4 = (n: number) => (n + 3) & ~3;

/** RTM_NEWROUTE (add, failing with EEXIST if present) or RTM_DELROUTE, §5.6. */
export function encodeRoute(op: "add" | "delete", route: DeviceRoute, seq: number): Uint8Array {
  const attributes = [
    [RTA_DST, 4, (view: DataView, at: number) => view.setUint32(at, route.dst, false)],
    [RTA_OIF, 4, (view: DataView, at: number) => view.setUint32(at, route.ifindex, true)],
  ] as const;
  const length = NLMSG_HDRLEN + 12 +
    attributes.reduce((sum, [, size]) => sum + align4(4 + size), 0);
  const out = new Uint8Array(length);
  const view = new DataView(out.buffer);
  view.setUint32(0, length, true);
  view.setUint16(4, op === "add" ? RTM_NEWROUTE : RTM_DELROUTE, true);
  const flags = op === "add"
    ? NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
    : NLM_F_REQUEST | NLM_F_ACK;
  view.setUint16(6, flags, true);
  view.setUint32(8, seq, true);
  view.setUint32(12, 0, true); // to the kernel
  out.set([AF_INET, route.prefix, 0, 0], NLMSG_HDRLEN); // family, dst_len, src_len, tos
  out.set([RT_TABLE_MAIN, RTPROT_STATIC, RT_SCOPE_LINK, RTN_UNICAST], NLMSG_HDRLEN + 4);
  let at = NLMSG_HDRLEN + 12;
  for (const [type, size, write] of attributes) {
    view.setUint16(at, 4 + size, true);
    view.setUint16(at + 2, type, true);
    write(view, at + 4);
    at += align4(4 + size);
  }
  return out;
}

/** A kernel ack: the request's sequence number and 0 or a positive errno. */
export interface NetlinkAck {
  seq: number;
  errno: number;
}

/** The acks in one `recv` buffer (several messages may arrive together); others are skipped. */
export function decodeAcks(bytes: Uint8Array): NetlinkAck[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const acks: NetlinkAck[] = [];
  for (let at = 0; at + NLMSG_HDRLEN <= bytes.length;) {
    const length = view.getUint32(at, true);
    if (length < NLMSG_HDRLEN || at + length > bytes.length) break;
    if (view.getUint16(at + 4, true) === NLMSG_ERROR && length >= NLMSG_HDRLEN + 4) {
      acks.push({ seq: view.getUint32(at + 8, true), errno: -view.getInt32(at + 16, true) | 0 });
    }
    at += align4(length);
  }
  return acks;
}
