/**
 * Addresses that lead back into this machine or its link rather than out to the network: the
 * proxy's pass-through path refuses them, because anything that can reach the proxy (a web page
 * through a PAC file, another user of a shared listener) would otherwise reach services that
 * trust loopback — k8stun's own API among them.
 */
import { ipv4ToNumber } from "../vip.ts";

/** IPv4 ranges, as [base, prefix length]. */
const LOCAL_IPV4: [number, number][] = [
  [0x00000000, 8], // "this host on this network" (RFC 1122 §3.2.1.3): 0.0.0.0 reaches loopback
  [0x7f000000, 8], // loopback (RFC 1122 §3.2.1.3)
  [0xa9fe0000, 16], // link-local (RFC 3927), including cloud metadata at 169.254.169.254
];

/** Whether `ip` (IPv4 dotted or IPv6, brackets allowed) is loopback, link-local or unspecified. */
export function isLocalAddress(ip: string): boolean {
  const v4 = ipv4ToNumber(ip);
  if (v4 !== undefined) return isLocalIpv4(v4);
  const v6 = parseIpv6(ip.replace(/^\[|\]$/g, "").replace(/%.*$/, ""));
  if (!v6) return false;
  const allZeroUpTo = (n: number) => v6.slice(0, n).every((word) => word === 0);
  if (allZeroUpTo(7) && v6[7] <= 1) return true; // :: (unspecified) and ::1 (RFC 4291 §2.5.2-3)
  if ((v6[0] & 0xffc0) === 0xfe80) return true; // link-local fe80::/10 (RFC 4291 §2.5.6)
  // IPv4-mapped (::ffff:a.b.c.d, RFC 4291 §2.5.5.2) and IPv4-compatible forms reach IPv4.
  if (allZeroUpTo(5) && (v6[5] === 0xffff || v6[5] === 0)) {
    return isLocalIpv4(((v6[6] << 16) | v6[7]) >>> 0);
  }
  return false;
}

function isLocalIpv4(n: number): boolean {
  return LOCAL_IPV4.some(([base, prefix]) => (n >>> (32 - prefix)) === (base >>> (32 - prefix)));
}

/** The eight 16-bit words of an IPv6 address (`::` and a dotted IPv4 tail allowed), or null. */
function parseIpv6(text: string): number[] | null {
  if (!text.includes(":")) return null;
  let tail: number[] = [];
  const dotted = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const v4 = ipv4ToNumber(dotted[2]);
    if (v4 === undefined) return null;
    tail = [v4 >>> 16, v4 & 0xffff];
    text = dotted[1].endsWith("::") ? dotted[1] : dotted[1].slice(0, -1);
  }
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const words = (part: string) => part === "" ? [] : part.split(":");
  const head = words(halves[0]);
  const rest = halves.length === 2 ? words(halves[1]) : [];
  const hex = [...head, ...rest];
  if (!hex.every((w) => /^[0-9a-f]{1,4}$/i.test(w))) return null;
  const missing = 8 - hex.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return null;
  return [
    ...head.map((w) => parseInt(w, 16)),
    ...new Array(halves.length === 2 ? missing : 0).fill(0),
    ...rest.map((w) => parseInt(w, 16)),
    ...tail,
  ];
}
