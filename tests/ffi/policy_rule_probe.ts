/**
 * Run in a fresh network namespace by policy_rule_test.ts: a TUN, tun_route's DNS diversion for
 * one resolver over rtnetlink, what `ip` then shows and routes, the route dump, and the rules'
 * removal; prints one JSON line.
 */
import { openLibc } from "../../ffi/linux/libc.ts";
import { openTun } from "../../ffi/linux/tun.ts";
import { interfaceIndex, routedRanges, RouteTable } from "../../ffi/linux/rtnetlink.ts";
import { diversionRuleUndo, divertDns } from "../../ffi/linux/dns_diversion.ts";
import type { PolicyRule } from "../../ffi/linux/netlink_wire.ts";

const ip = async (...args: string[]) =>
  new TextDecoder().decode(
    (await new Deno.Command("ip", { args, stdout: "piped" }).output()).stdout,
  )
    .trim();
const { symbols: libc } = openLibc();
const tun = openTun(libc, "");
const ifindex = interfaceIndex(tun.name, libc);
const table = RouteTable.open(libc);
table.configureLink(ifindex, 0xc6120001, 1500, 1000); // 198.18.0.1
table.close();
await ip("link", "add", "up0", "type", "veth", "peer", "name", "up1");
await ip("addr", "add", "10.9.0.1/24", "dev", "up0");
await ip("link", "set", "up0", "up");
await ip("link", "set", "up1", "up");
const journaled: PolicyRule[] = [];
await divertDns(libc, ifindex, [0x0a090035], { // 10.9.0.53
  recordRule: (rule) => {
    journaled.push(rule);
    return Promise.resolve();
  },
});
const seen = {
  tun: tun.name,
  rules: await ip("rule"),
  dnsUdp: await ip("route", "get", "10.9.0.53", "ipproto", "udp", "dport", "53"),
  dnsTcp: await ip("route", "get", "10.9.0.53", "ipproto", "tcp", "dport", "53"),
  web: await ip("route", "get", "10.9.0.53", "ipproto", "tcp", "dport", "80"),
  bound: await ip("route", "get", "10.9.0.53", "ipproto", "udp", "dport", "53", "oif", "up0"),
  journaled: journaled.length,
  dumped: routedRanges(libc).filter((r) => r.dst === 0x0a090035).map((r) => r.owner),
  rulesAfter: "",
};
const undo = diversionRuleUndo(libc);
for (const rule of journaled) {
  if (undo.mayRemove(rule)) undo.remove(rule);
}
undo.remove(journaled[0]); // gone already: fine
seen.rulesAfter = await ip("rule");
console.log(JSON.stringify(seen));
