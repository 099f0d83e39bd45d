/**
 * tun_route's diversion (cli/resolver_diversion.ts): only DNS to the resolvers enters the TUN.
 * Where the system could only route a resolver's whole address — macOS, or a Linux kernel that
 * refuses port-matching rules — the diversion is refused and tun_route falls back to forward:
 * a router's web page or a domain controller's LDAP must not end up at k8stun's DNS server.
 */
import { assert, assertEquals, assertRejects } from "../assert.ts";
import type { DnsMode, DnsModeContext } from "../../mod.ts";
import { resolverDiversion } from "../../cli/resolver_diversion.ts";
import { openHostNetwork } from "../../ffi/host_network.ts";
import { PolicyRulesRefused } from "../../ffi/linux/dns_diversion.ts";
import { tunRouteMode } from "../../plugins/dns/tun_route.ts";

const RESOLVER = "192.168.1.1";
const RESOLVER_NUMBER = 0xc0a80101;

/** A data plane and journal that record what the diversion asked of them. */
function parts(divertDns: Parameters<typeof resolverDiversion>[0]["host"]["divertDns"]) {
  const served: number[] = [];
  const dnsAddresses = new Set<string>();
  return {
    served,
    dnsAddresses,
    routeToTun: resolverDiversion({
      host: { divertDns },
      dataPlane: { ifindex: () => 7, serveAddresses: (a) => void served.push(...a) },
      journal: { recordRule: () => Promise.resolve() },
      dnsAddresses,
    }),
  };
}

Deno.test("diversion: with port-matching rules, DNS to the resolver is diverted and served in the TUN", async () => {
  const calls: [number, number[]][] = [];
  const { routeToTun, served, dnsAddresses } = parts((ifindex, resolvers) => {
    calls.push([ifindex, resolvers]);
    return Promise.resolve();
  });
  await routeToTun([RESOLVER]);
  assertEquals(calls, [[7, [RESOLVER_NUMBER]]]);
  assertEquals(served, [RESOLVER_NUMBER]);
  assertEquals([...dnsAddresses], [RESOLVER]);
});

Deno.test("diversion: a system without port-matching rules (macOS) is refused, serving nothing", async () => {
  const { routeToTun, served, dnsAddresses } = parts(openHostNetwork("darwin").divertDns);
  await assertRejects(
    () => routeToTun([RESOLVER]),
    /cannot send only their DNS into the TUN.*other traffic must keep its path/,
  );
  assertEquals([served, [...dnsAddresses]], [[], []]);
});

Deno.test("diversion: a kernel that refuses the rules (Linux before 4.17) is refused with its reason, no whole-address route instead", async () => {
  const { routeToTun } = parts(() =>
    Promise.reject(
      new PolicyRulesRefused(
        "the kernel refused a DNS policy rule (errno 22: port-matching rules need Linux 4.17)",
      ),
    )
  );
  await assertRejects(
    () => routeToTun([RESOLVER]),
    /need Linux 4\.17\); their other traffic must keep its path, so they are not routed into the TUN whole either/,
  );
});

Deno.test("diversion: other failures (the TUN vanished) propagate as they are", async () => {
  const { routeToTun } = parts(() => Promise.reject(new Error("no such device")));
  await assertRejects(() => routeToTun([RESOLVER]), /^Error: no such device$/);
});

Deno.test("tun_route on macOS: falls back to forward, says why, and forward reaches the resolver by the routing table", async () => {
  const calls: string[] = [];
  const forward: DnsMode = {
    name: "forward",
    apply: () => Promise.resolve(void calls.push("forward")),
    revert: () => Promise.resolve(),
  };
  const warnings: string[] = [];
  const bindings: string[] = [];
  const { routeToTun } = parts(openHostNetwork("darwin").divertDns);
  const ctx: DnsModeContext = {
    server: { address: "127.0.0.1", port: 53 },
    domains: ["cluster.local"],
    resolvers: { configured: [RESOLVER], upstreams: [RESOLVER], stub: false },
    routeToTun,
    bindUpstream: (server, device) => void bindings.push(`bind ${server} ${device}`),
    unbindUpstream: (server) => void bindings.push(`unbind ${server}`),
    journal: { recordFile: () => Promise.resolve(), recordStep: () => Promise.resolve() },
    log: {
      debug: () => {},
      info: () => {},
      warn: (message, values) =>
        void warnings.push(message.replace(/\{(\w+)\}/g, (_, k) => String(values?.[k]))),
      error: () => {},
    },
  };
  const applied = await tunRouteMode(forward, () => "en0").apply(ctx);
  assertEquals(applied?.mode, "forward");
  assert(/no port-matching routing rules/.test(applied?.reason ?? ""), applied?.reason);
  assertEquals(calls, ["forward"]);
  assertEquals(bindings, [`bind ${RESOLVER} en0`, `unbind ${RESOLVER}`]);
  assert(warnings.some((w) => /using forward mode instead/.test(w)), warnings.join("\n"));
});
