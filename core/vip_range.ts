/**
 * Choosing the VIP range: one that no other route on this machine covers. Another VPN or a
 * fake-IP proxy (which commonly takes 198.18.0.0/15 too) keeps its routes; k8stun moves to the
 * next free candidate and says so. A range the user named and that is taken is an error, since
 * silently using another one would break the addresses they wrote down.
 */
import { numberToIpv4, parseVipBase, type VipNetwork } from "./vip.ts";

/** Address ranges tried in order when `--vip-base` is not given. */
export const VIP_RANGE_CANDIDATES = [
  "198.18.0.0/15", // RFC 2544 benchmarking space: never routed on the Internet or in clusters
  "198.18.0.0/16",
  "198.19.0.0/16",
  "100.127.0.0/16", // the top of RFC 6598 shared space
  "172.30.0.0/16",
  "10.253.0.0/16",
];

/** A destination some other route already covers, and who owns it. */
export interface RoutedRange {
  dst: number;
  prefix: number;
  /** The interface (or route kind, e.g. "blackhole") the range goes to. */
  owner: string;
}

/**
 * Routes shorter than this cover "everything" (a default route, a VPN's 0.0.0.0/1 and
 * 128.0.0.0/1 pair): a more specific route of ours is the normal way to coexist with them.
 */
const BROAD_PREFIX = 8;

/** Whether two networks share any address. */
export function overlaps(a: { dst: number; prefix: number }, b: { dst: number; prefix: number }) {
  const prefix = Math.min(a.prefix, b.prefix);
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return ((a.dst & mask) >>> 0) === ((b.dst & mask) >>> 0);
}

/** The chosen range, and the candidates passed over with who owns them. */
export interface VipRangeChoice {
  network: VipNetwork;
  skipped: { cidr: string; owner: string }[];
}

/** Picks the VIP range given the routes that exist now (see the module comment). */
export function chooseVipRange(
  explicit: string | undefined,
  routed: RoutedRange[],
): VipRangeChoice {
  const specific = routed.filter((r) => r.prefix >= BROAD_PREFIX);
  const ownerOf = (network: VipNetwork) =>
    specific.find((r) => overlaps({ dst: network.base, prefix: network.prefix }, r));
  if (explicit !== undefined) {
    const network = parseVipBase(explicit);
    const taken = ownerOf(network);
    if (taken) {
      const free = VIP_RANGE_CANDIDATES.find((c) => !ownerOf(parseVipBase(c)));
      throw new Error(
        `--vip-base ${cidr(network)} overlaps ${
          numberToIpv4(taken.dst)
        }/${taken.prefix}, which is routed to ${taken.owner}; ` +
          (free ? `choose a free range (e.g. --vip-base ${free}) ` : "choose a free range ") +
          `or stop what owns it`,
      );
    }
    return { network, skipped: [] };
  }
  const skipped: VipRangeChoice["skipped"] = [];
  for (const candidate of VIP_RANGE_CANDIDATES) {
    const network = parseVipBase(candidate);
    const taken = ownerOf(network);
    if (!taken) return { network, skipped };
    skipped.push({ cidr: candidate, owner: taken.owner });
  }
  throw new Error(
    `every VIP range k8stun tries is already routed (${
      skipped.map((s) => `${s.cidr} to ${s.owner}`).join(", ")
    }); choose one with --vip-base`,
  );
}

/**
 * Ranges no public host uses: RFC 1918 private space, RFC 6598 shared space, RFC 2544
 * benchmarking space and the RFC 5737 documentation networks. A VIP range elsewhere hides the
 * real hosts at those addresses from this machine while k8stun runs.
 */
const NON_PUBLIC_RANGES = [
  "10.0.0.0/8",
  "172.16.0.0/12",
  "192.168.0.0/16",
  "100.64.0.0/10",
  "198.18.0.0/15",
  "192.0.2.0/24",
  "198.51.100.0/24",
  "203.0.113.0/24",
].map((c) => parseVipBase(c));

/** Whether the whole of `network` lies in address space no public host uses. */
export function isNonPublicRange(network: VipNetwork): boolean {
  return NON_PUBLIC_RANGES.some((r) =>
    r.prefix <= network.prefix && overlaps({ dst: network.base, prefix: network.prefix }, {
      dst: r.base,
      prefix: r.prefix,
    })
  );
}

/** The warning for a `--vip-base` in public address space, or undefined. */
export function publicVipRangeWarning(network: VipNetwork): string | undefined {
  if (isNonPublicRange(network)) return undefined;
  return `--vip-base ${cidr(network)} is public address space: while k8stun runs, the real ` +
    `hosts at those addresses are unreachable from this machine; prefer ${
      VIP_RANGE_CANDIDATES[0]
    } (the default) or a private range`;
}

function cidr(network: VipNetwork): string {
  return `${numberToIpv4(network.base)}/${network.prefix}`;
}
