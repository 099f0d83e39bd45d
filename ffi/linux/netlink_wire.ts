/**
 * rtnetlink messages as bytes (docs/platform.md §3.2–docs/platform.md §2.2): a 16-byte `nlmsghdr`, one fixed
 * struct (`rtmsg` 12, `ifaddrmsg` 8 or `ifinfomsg` 16 bytes), then `rtattr`s each padded to 4
 * bytes; and the kernel's acks (`NLMSG_ERROR` carrying −errno, docs/platform.md §3.5). Every request asks for an
 * ack, so a failure is never silent. Host byte order is little-endian (x86_64, aarch64);
 * addresses are in network order.
 */
import type { JournaledRule } from "../../core/journal.ts";

const NLMSG_HDRLEN = 16;
const NLMSG_DONE = 3;
const NLMSG_ERROR = 2;
const RTM_NEWLINK = 16;
const RTM_NEWADDR = 20;
const RTM_NEWROUTE = 24;
const RTM_DELROUTE = 25;
const RTM_GETROUTE = 26;
const RTM_NEWRULE = 32;
const RTM_DELRULE = 33;
const RTMSG_LENGTH = 12;
const NLM_F_REQUEST = 0x1;
const NLM_F_ACK = 0x4;
const NLM_F_EXCL = 0x200;
const NLM_F_CREATE = 0x400;
const NLM_F_DUMP = 0x300;
/** Add, failing with EEXIST if present (0x605, docs/platform.md §3.2). */
const CREATE_EXCL = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
/** Delete, or change an existing link (0x005). */
const CHANGE = NLM_F_REQUEST | NLM_F_ACK;
const AF_UNSPEC = 0;
const AF_INET = 2;
const RT_TABLE_COMPAT = 252;
const RT_TABLE_MAIN = 254;
const RTN_UNICAST = 1;
const RTA_DST = 1;
const RTA_OIF = 4;
const RTA_TABLE = 15;
/** fib_rule_hdr action and FRA_* attribute types (linux/fib_rules.h). */
const FR_ACT_TO_TBL = 1;
const FRA_DST = 1;
const FRA_PRIORITY = 6;
const FRA_TABLE = 15;
const FRA_PROTOCOL = 21;
const FRA_IP_PROTO = 22;
const FRA_DPORT_RANGE = 24;
const IFA_ADDRESS = 1;
const IFA_LOCAL = 2;
const IFLA_MTU = 4;
const IFLA_TXQLEN = 13;
const IFF_UP = 0x1;

/** rtm_protocol values (docs/platform.md §3.2): who made the route, shown by `ip route` as `proto …`. */
export const RouteProtocol = { BOOT: 3, STATIC: 4 } as const;
/** rtm_scope values (docs/platform.md §3.2): LINK for a device route without a gateway. */
export const RouteScope = { UNIVERSE: 0, LINK: 253, HOST: 254 } as const;

/** An IPv4 device route: `dst/prefix dev <ifindex>`. */
export interface DeviceRoute {
  /** Destination network, as a 32-bit number (198.18.0.0 = 0xc6120000). */
  dst: number;
  prefix: number;
  ifindex: number;
  /** Default STATIC: k8stun's routes are told apart from `ip route add`'s (BOOT). */
  protocol?: number;
  /** Default LINK (no gateway). */
  scope?: number;
  /** Routing table (default main); ids above 255 travel in RTA_TABLE. */
  table?: number;
}

const align4 = (n: number) => (n + 3) & ~3;

const u32 = (value: number) => {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, value, true);
  return out;
};
const ipv4 = (address: number) => {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, address, false);
  return out;
};

/** `rtattr`: u16 length (4 + payload, unpadded), u16 type, payload, zeros to RTA_ALIGN. */
export function encodeAttribute(type: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(align4(4 + payload.length));
  const view = new DataView(out.buffer);
  view.setUint16(0, 4 + payload.length, true);
  view.setUint16(2, type, true);
  out.set(payload, 4);
  return out;
}

/** `nlmsghdr` (to the kernel: pid 0), the fixed struct, then the attributes. */
function encodeMessage(
  type: number,
  flags: number,
  seq: number,
  fixed: Uint8Array,
  attributes: Uint8Array[] = [],
): Uint8Array {
  const parts = [fixed, ...attributes];
  const length = NLMSG_HDRLEN + parts.reduce((sum, part) => sum + part.length, 0);
  const out = new Uint8Array(length);
  const view = new DataView(out.buffer);
  view.setUint32(0, length, true);
  view.setUint16(4, type, true);
  view.setUint16(6, flags, true);
  view.setUint32(8, seq, true);
  let at = NLMSG_HDRLEN;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/**
 * RTM_NEWROUTE (add, EEXIST if present) or RTM_DELROUTE for a device route, in table main unless
 * the route names another (docs/platform.md §3.3).
 */
export function encodeRoute(op: "add" | "delete", route: DeviceRoute, seq: number): Uint8Array {
  const table = route.table ?? RT_TABLE_MAIN;
  const rtmsg = new Uint8Array([
    AF_INET,
    route.prefix, // rtm_dst_len
    0, // rtm_src_len
    0, // rtm_tos
    table > 255 ? RT_TABLE_COMPAT : table,
    route.protocol ?? RouteProtocol.STATIC,
    route.scope ?? RouteScope.LINK,
    RTN_UNICAST,
    ...[0, 0, 0, 0], // rtm_flags
  ]);
  return encodeMessage(
    op === "add" ? RTM_NEWROUTE : RTM_DELROUTE,
    op === "add" ? CREATE_EXCL : CHANGE,
    seq,
    rtmsg,
    [
      encodeAttribute(RTA_DST, ipv4(route.dst)),
      encodeAttribute(RTA_OIF, u32(route.ifindex)),
      ...(table > 255 ? [encodeAttribute(RTA_TABLE, u32(table))] : []),
    ],
  );
}

/** A policy routing rule (`ip rule`), as k8stun adds it and journals it (core/journal.ts). */
export type PolicyRule = JournaledRule;

/**
 * RTM_NEWRULE (add, EEXIST if present) or RTM_DELRULE: a 12-byte `fib_rule_hdr` (family, dst and
 * src lengths, tos, table, two reserved bytes, action, u32 flags; linux/fib_rules.h), then
 * FRA_* attributes. Port ranges are two u16 in host order; the protocol marks the rule as
 * k8stun's (proto static) so `ip rule` shows who made it.
 */
export function encodeRule(op: "add" | "delete", rule: PolicyRule, seq: number): Uint8Array {
  const header = new Uint8Array([
    AF_INET,
    rule.dstPrefix,
    0, // src_len
    0, // tos
    rule.table > 255 ? 0 : rule.table, // RT_TABLE_UNSPEC: the table is in FRA_TABLE
    0,
    0,
    FR_ACT_TO_TBL,
    ...[0, 0, 0, 0], // flags
  ]);
  const ports = new Uint8Array(4);
  new DataView(ports.buffer).setUint16(0, rule.dport, true);
  new DataView(ports.buffer).setUint16(2, rule.dport, true);
  return encodeMessage(
    op === "add" ? RTM_NEWRULE : RTM_DELRULE,
    op === "add" ? CREATE_EXCL : CHANGE,
    seq,
    header,
    [
      encodeAttribute(FRA_DST, ipv4(rule.dst)),
      encodeAttribute(FRA_PRIORITY, u32(rule.priority)),
      encodeAttribute(FRA_TABLE, u32(rule.table)),
      encodeAttribute(FRA_PROTOCOL, new Uint8Array([RouteProtocol.STATIC])),
      encodeAttribute(FRA_IP_PROTO, new Uint8Array([rule.ipProto])),
      encodeAttribute(FRA_DPORT_RANGE, ports),
    ],
  );
}

/**
 * RTM_NEWADDR: `address/prefix` on `ifindex`, as both IFA_LOCAL and IFA_ADDRESS (docs/platform.md §3.3). A prefix
 * below 32 also makes the kernel add the prefix route (proto kernel), so k8stun uses /32.
 */
export function encodeNewAddress(
  address: { address: number; prefix: number; ifindex: number },
  seq: number,
): Uint8Array {
  const ifaddrmsg = new Uint8Array(8);
  ifaddrmsg.set([AF_INET, address.prefix, 0, 0]); // family, prefixlen, flags, scope universe
  ifaddrmsg.set(u32(address.ifindex), 4);
  const value = ipv4(address.address);
  return encodeMessage(RTM_NEWADDR, CREATE_EXCL, seq, ifaddrmsg, [
    encodeAttribute(IFA_LOCAL, value),
    encodeAttribute(IFA_ADDRESS, value),
  ]);
}

/** `ifinfomsg` for `ifindex`, changing the flags in `change` to `flags`. */
function ifinfomsg(ifindex: number, flags: number, change: number): Uint8Array {
  const out = new Uint8Array(16);
  const view = new DataView(out.buffer);
  out[0] = AF_UNSPEC; // then a pad byte and ifi_type 0
  view.setInt32(4, ifindex, true);
  view.setUint32(8, flags, true);
  view.setUint32(12, change, true);
  return out;
}

/** RTM_NEWLINK setting IFF_UP on an existing link (docs/platform.md §3.3). */
export function encodeLinkUp(ifindex: number, seq: number): Uint8Array {
  return encodeMessage(RTM_NEWLINK, CHANGE, seq, ifinfomsg(ifindex, IFF_UP, IFF_UP));
}

/** RTM_NEWLINK with IFLA_MTU, leaving the flags alone (change mask 0, docs/platform.md §3.3). */
export function encodeSetMtu(ifindex: number, mtu: number, seq: number): Uint8Array {
  return encodeMessage(RTM_NEWLINK, CHANGE, seq, ifinfomsg(ifindex, 0, 0), [
    encodeAttribute(IFLA_MTU, u32(mtu)),
  ]);
}

/** RTM_NEWLINK with IFLA_TXQLEN: how many packets the kernel queues for the TUN's reader. */
export function encodeSetTxQueueLength(ifindex: number, length: number, seq: number): Uint8Array {
  return encodeMessage(RTM_NEWLINK, CHANGE, seq, ifinfomsg(ifindex, 0, 0), [
    encodeAttribute(IFLA_TXQLEN, u32(length)),
  ]);
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

/** RTM_GETROUTE dump of every IPv4 route in every table (main, local, and policy tables). */
export function encodeRouteDump(seq: number): Uint8Array {
  const rtmsg = new Uint8Array(RTMSG_LENGTH);
  rtmsg[0] = AF_INET;
  return encodeMessage(RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, seq, rtmsg);
}

/** One route of a dump, as far as deciding whether an address range is taken needs. */
export interface DumpedRoute {
  /** Destination network (0 for a default route). */
  dst: number;
  prefix: number;
  /** The routing table (254 main, 255 local, others for policy routing). */
  table: number;
  /** rtm_type: 1 unicast, 2 local, 3 broadcast, 6 blackhole, 7 unreachable... */
  type: number;
  /** The outgoing interface, when the route names one. */
  ifindex?: number;
}

/** The routes in one `recv` buffer of a dump, and whether the dump ended (NLMSG_DONE). */
export function decodeRouteDump(bytes: Uint8Array, seq: number): {
  routes: DumpedRoute[];
  done: boolean;
  errno: number;
} {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const routes: DumpedRoute[] = [];
  for (let at = 0; at + NLMSG_HDRLEN <= bytes.length;) {
    const length = view.getUint32(at, true);
    if (length < NLMSG_HDRLEN || at + length > bytes.length) break;
    const type = view.getUint16(at + 4, true);
    const mine = view.getUint32(at + 8, true) === seq;
    if (mine && type === NLMSG_DONE) return { routes, done: true, errno: 0 };
    if (mine && type === NLMSG_ERROR && length >= NLMSG_HDRLEN + 4) {
      return { routes, done: true, errno: -view.getInt32(at + 16, true) | 0 };
    }
    if (mine && type === RTM_NEWROUTE && length >= NLMSG_HDRLEN + RTMSG_LENGTH) {
      const body = at + NLMSG_HDRLEN;
      if (bytes[body] === AF_INET) {
        const route: DumpedRoute = {
          dst: 0,
          prefix: bytes[body + 1],
          table: bytes[body + 4],
          type: bytes[body + 7],
        };
        for (let a = body + RTMSG_LENGTH; a + 4 <= at + length;) {
          const attrLength = view.getUint16(a, true);
          if (attrLength < 4 || a + attrLength > at + length) break;
          const attrType = view.getUint16(a + 2, true);
          if (attrType === RTA_DST && attrLength >= 8) route.dst = view.getUint32(a + 4, false);
          if (attrType === RTA_OIF && attrLength >= 8) route.ifindex = view.getUint32(a + 4, true);
          if (attrType === RTA_TABLE && attrLength >= 8) route.table = view.getUint32(a + 4, true);
          a += align4(attrLength);
        }
        routes.push(route);
      }
    }
    at += align4(length);
  }
  return { routes, done: false, errno: 0 };
}
