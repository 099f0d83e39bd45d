/**
 * The host's routing facts, and the routing changes outside the TUN that k8stun makes, for the
 * OS it runs on: the one place that picks the OS module, used by the composition root (`cli/`).
 * Linux reads every routing table and diverts DNS by policy rules (docs/platform.md §3.4, §3.6);
 * macOS has no port-matching rules (so tun_route falls back to forward there) and its route
 * table is not read yet, so the VIP range is not checked for overlaps there.
 */
import { diversionRuleUndo, divertDns } from "./linux/dns_diversion.ts";
import { openLibc } from "./linux/libc.ts";
import type { PolicyRule } from "./linux/netlink_wire.ts";
import { routedRanges } from "./linux/rtnetlink.ts";

/** What the host's routing offers k8stun. */
export interface HostNetwork {
  /** Every destination routed on this host, with its owner; empty where it cannot be read. */
  routedRanges(): { dst: number; prefix: number; owner: string }[];
  /** Removes journaled DNS policy rules (for the journal's undo and `cleanup`), where there are any. */
  readonly ruleUndo?: { mayRemove(rule: PolicyRule): boolean; remove(rule: PolicyRule): void };
  /**
   * Sends only DNS to `resolvers` into the TUN `ifindex` (journaled first); undefined where the
   * OS cannot match by port. Throws PolicyRulesRefused when the kernel refuses the rules.
   */
  readonly divertDns?: (
    ifindex: number,
    resolvers: number[],
    journal: { recordRule(rule: PolicyRule): Promise<void> },
  ) => Promise<void>;
  close(): void;
}

/** The host network of this OS. */
export function openHostNetwork(os: typeof Deno.build.os = Deno.build.os): HostNetwork {
  if (os !== "linux") return { routedRanges: () => [], close() {} };
  const lib = openLibc();
  return {
    routedRanges: () => routedRanges(lib.symbols),
    ruleUndo: diversionRuleUndo(lib.symbols),
    divertDns: (ifindex, resolvers, journal) => divertDns(lib.symbols, ifindex, resolvers, journal),
    close: () => lib.close(),
  };
}
