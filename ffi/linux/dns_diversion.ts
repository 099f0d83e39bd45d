/**
 * tun_route's DNS diversion on Linux: only DNS (UDP and TCP port 53) to the system's resolvers
 * goes into the TUN, by policy routing — a rule per resolver and protocol sends those packets to
 * a table of k8stun's own whose one route points into the TUN. Everything else to the resolver's
 * address (on home networks the router: its admin page, NTP, DHCP) takes the normal path, and
 * k8stun's own upstream sockets, bound to the physical interface, never match the TUN route.
 * The table's route vanishes with the TUN; the rules do not, so they are journaled before they
 * are added and `cleanup` removes them. Kernels that refuse port-matching rules (before 4.17)
 * get a /32 route to the resolver instead, which takes all of its traffic.
 */
import { Errno, type Libc } from "./libc.ts";
import type { PolicyRule } from "./netlink_wire.ts";
import { RouteTable } from "./rtnetlink.ts";

/** k8stun's routing table for diverted DNS (any id no common tool uses). */
export const DNS_DIVERSION_TABLE = 18153;
/** Before the main table (32766) and the VPN tables (wg-quick, Tailscale) so DNS is diverted. */
export const DNS_DIVERSION_PRIORITY = 5199;

const IPPROTO_TCP = 6;
const IPPROTO_UDP = 17;

/** The two rules that divert DNS to `resolver` (a 32-bit address). */
export function diversionRules(resolver: number): PolicyRule[] {
  return [IPPROTO_UDP, IPPROTO_TCP].map((ipProto) => ({
    dst: resolver,
    dstPrefix: 32,
    ipProto,
    dport: 53,
    table: DNS_DIVERSION_TABLE,
    priority: DNS_DIVERSION_PRIORITY,
  }));
}

/** Whether a journaled rule is one of these (cleanup removes nothing else). */
export function isDiversionRule(rule: PolicyRule): boolean {
  return rule.table === DNS_DIVERSION_TABLE && rule.priority === DNS_DIVERSION_PRIORITY &&
    rule.dport === 53 && rule.dstPrefix === 32 &&
    (rule.ipProto === IPPROTO_UDP || rule.ipProto === IPPROTO_TCP);
}

/** The kernel cannot match rules by protocol and port (too old, or not allowed). */
export class PolicyRulesRefused extends Error {}

/**
 * Diverts DNS to each resolver into the TUN `ifindex`: the table route, then each rule, journaled
 * first. Throws {@link PolicyRulesRefused} when the first rule is refused (nothing is left then).
 */
export async function divertDns(
  libc: Libc,
  ifindex: number,
  resolvers: number[],
  journal: { recordRule(rule: PolicyRule): Promise<void> },
): Promise<void> {
  const table = RouteTable.open(libc);
  try {
    for (const resolver of resolvers) {
      table.add({ dst: resolver, prefix: 32, ifindex, table: DNS_DIVERSION_TABLE });
      for (const rule of diversionRules(resolver)) {
        await journal.recordRule(rule);
        const code = table.addRule(rule);
        if (code === Errno.EEXIST) continue; // left by a run that crashed: same effect
        if (code !== 0) {
          throw new PolicyRulesRefused(
            `the kernel refused a DNS policy rule (errno ${code}${
              code === Errno.EINVAL ? ": port-matching rules need Linux 4.17" : ""
            })`,
          );
        }
      }
    }
  } finally {
    table.close();
  }
}

/** Removal of journaled diversion rules, for the journal's undo and `cleanup`. */
export function diversionRuleUndo(libc: Libc): {
  mayRemove(rule: PolicyRule): boolean;
  remove(rule: PolicyRule): void;
} {
  return {
    mayRemove: isDiversionRule,
    remove(rule) {
      const table = RouteTable.open(libc);
      try {
        table.deleteRule(rule);
      } finally {
        table.close();
      }
    },
  };
}
