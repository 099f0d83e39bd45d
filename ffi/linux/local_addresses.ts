/**
 * The IPv4 addresses of this host's interfaces, from `getifaddrs(3)`: the set of sources the
 * packet loop accepts (core/net/packet_loop/local_sources.ts). `getifaddrs` rather than an rtnetlink
 * dump because macOS has the same call (there `struct sockaddr` starts with a length byte, the
 * family follows; the list itself is laid out alike).
 */
import { errno, type Libc } from "./libc.ts";

const AF_INET = 2;
/**
 * struct ifaddrs (64-bit Linux and macOS alike): ifa_next at 0, ifa_name at 8, ifa_flags at 16,
 * ifa_addr at 24.
 */
const IFA_NEXT = 0;
const IFA_ADDR = 24;
/** Ends the walk of a corrupt (cyclic) list; no host has this many addresses. */
const MAX_ENTRIES = 65_536;

/** The host's IPv4 addresses (host byte order u32), sorted, without duplicates. */
export function localIpv4Addresses(libc: Libc): number[] {
  const head = new BigUint64Array(1);
  if (libc.getifaddrs(new Uint8Array(head.buffer)) !== 0) {
    throw new Error(`cannot list the host's addresses (getifaddrs): errno ${errno(libc)}`);
  }
  const list = Deno.UnsafePointer.create(head[0]);
  try {
    return ifaddrsIpv4(list, "linux");
  } finally {
    libc.freeifaddrs(list);
  }
}

/**
 * The IPv4 addresses in a `getifaddrs` list. `sockaddr` differs: on Linux the family is a u16 at
 * 0; on the BSDs and macOS a length byte comes first and the family is the byte at 1.
 */
export function ifaddrsIpv4(list: Deno.PointerValue, layout: "linux" | "bsd"): number[] {
  const addresses = new Set<number>();
  let entry = list;
  for (let i = 0; entry !== null && i < MAX_ENTRIES; i++) {
    const view = new Deno.UnsafePointerView(entry);
    const sockaddr = view.getPointer(IFA_ADDR);
    if (sockaddr !== null) {
      const address = new Deno.UnsafePointerView(sockaddr);
      // sockaddr_in: family, port, then the address in network order at 4.
      const family = layout === "linux" ? address.getUint16(0) : address.getUint8(1);
      if (family === AF_INET) {
        const bytes = new Uint8Array(4);
        address.copyInto(bytes, 4);
        addresses.add(((bytes[0] << 24) | (bytes[1] << 16) | (bytes[2] << 8) | bytes[3]) >>> 0);
      }
    }
    entry = view.getPointer(IFA_NEXT);
  }
  return [...addresses].sort((a, b) => a - b);
}
