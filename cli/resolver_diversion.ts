/**
 * `tun_route`'s diversion on this host (the DnsModeContext's `routeToTun`): DNS to the system's
 * resolvers — UDP and TCP port 53, nothing else — enters the TUN, where k8stun answers
 * (docs/platform.md §3.4). A resolver is often the home router or an office domain controller,
 * and its web page, NTP, LDAP or Kerberos must keep their path; so where the system can only
 * route an address's whole traffic (macOS has no port-matching routing rules; Linux kernels
 * before 4.17 refuse them), the diversion is refused, changing nothing, and `tun_route` falls
 * back to `forward` saying why (plugins/dns/tun_route.ts).
 */
import { ipv4ToNumber } from "../core/vip.ts";
import { PolicyRulesRefused } from "../ffi/linux/dns_diversion.ts";
import type { HostNetwork } from "../ffi/host_network.ts";
import type { TunDataPlane } from "../core/net/data_plane/data_plane.ts";
import type { PolicyRule } from "../ffi/linux/netlink_wire.ts";

/** What the diversion works with. */
export interface DiversionParts {
  host: Pick<HostNetwork, "divertDns">;
  dataPlane: Pick<TunDataPlane, "ifindex" | "serveAddresses">;
  journal: { recordRule(rule: PolicyRule): Promise<void> };
  /** Addresses whose TCP port 53 k8stun's DNS serves from the TUN (dnsOverTcpResolver). */
  dnsAddresses: Set<string>;
}

/** The `routeToTun` of this host. */
export function resolverDiversion(parts: DiversionParts): (addresses: string[]) => Promise<void> {
  return async (addresses) => {
    const divertDns = parts.host.divertDns;
    if (!divertDns) {
      throw new Error(
        "this system cannot send only their DNS into the TUN (it has no port-matching routing " +
          "rules), and their other traffic must keep its path",
      );
    }
    const resolvers = addresses.map((a) => ipv4ToNumber(a)!);
    // The stack answers first, then packets come. (Refused rules leave nothing that routes
    // these addresses here, so serving them changes nothing.)
    for (const address of addresses) parts.dnsAddresses.add(address);
    parts.dataPlane.serveAddresses(resolvers);
    try {
      await divertDns(parts.dataPlane.ifindex(), resolvers, parts.journal);
    } catch (error) {
      if (!(error instanceof PolicyRulesRefused)) throw error;
      throw new Error(
        `${error.message}; their other traffic must keep its path, so they are not routed ` +
          "into the TUN whole either",
      );
    }
  };
}
