/**
 * In `tun_route` the packet loop forwards the names that cannot be the cluster's itself
 * (core/net/packet_loop/dns_forwarder.ts, docs/architecture.md "A DNS query"). Seen from the lab's
 * client: public names keep their answers and are counted in /metrics like any forwarded query,
 * cluster names still get VIPs, and a plugin resolver's own names (`*.internal`, which no cluster
 * suffix covers) still reach the plugin instead of going upstream.
 */
import { assertEquals, assertMatch } from "../assert.ts";
import { Lab, labUnavailable } from "../lab/lab.ts";
import { startDemo } from "../adversarial/harness.ts";

const ignore = labUnavailable() !== undefined;
const UPSTREAM = new URL("../lab/upstream_dns.ts", import.meta.url).pathname;
const RESOLV = "nameserver 10.77.0.2\noptions ndots:1 timeout:2\n";
const API_PORT = "8793";

/** Resolves `grafana.internal` to the demo's hello service; every other name is not its own. */
const INTERNAL_NAMES = `
export const plugin = {
  name: "internal-names", version: "0.0.1", apiVersion: 1, kinds: ["resolver"],
  setup() {
    return { resolvers: [{
      name: "internal-names",
      resolveName: (name) =>
        name === "grafana.internal" ? { kind: "service", namespace: "demo", name: "hello" } : null,
    }] };
  },
};
`;

async function withResolver(fn: (lab: Lab) => Promise<void>): Promise<void> {
  await using lab = await Lab.create({ resolvConf: RESOLV });
  const peer = await lab.addPeer();
  await peer.spawn(Deno.execPath(), ["run", "-A", UPSTREAM]).waitForOutput(/READY/, 30_000);
  await fn(lab);
}

const dig = (lab: Lab, name: string) =>
  lab.run("dig", ["+short", "+tries=1", "+time=3", name]).then((r) => r.stdout.trim());

/** The `k8stun_dns_queries_total` samples of kind `upstream`, as `rcode count` lines. */
async function upstreamCounts(lab: Lab): Promise<Map<string, number>> {
  const text = (await lab.run("curl", ["-s", `http://127.0.0.1:${API_PORT}/metrics`])).stdout;
  const counts = new Map<string, number>();
  for (const match of text.matchAll(/^k8stun_dns_queries_total\{(.*)\} (\d+)$/gm)) {
    if (!match[1].includes('kind="upstream"')) continue;
    counts.set(/rcode="(\w+)"/.exec(match[1])![1], Number(match[2]));
  }
  return counts;
}

Deno.test({
  name:
    "e2e: tun_route forwards public names from the packet loop — answers unchanged, counted in /metrics — and cluster names still get VIPs",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await withResolver(async (lab) => {
      const k8stun = await startDemo(lab, ["--dns-mode", "tun_route", "--http", API_PORT]);
      assertMatch(k8stun.output, /now reach k8stun through/);
      for (let i = 0; i < 5; i++) {
        assertEquals(await dig(lab, "www.public-example.com"), "203.0.113.7");
      }
      assertMatch(await dig(lab, "nosuch.public-example.com"), /^$/);
      // The loop reports forwarded names without waking the main thread: with nothing else
      // happening, the counts still arrive within moments (worker.ts, QUIET_EVENT_DELAY_MS).
      // (Other lookups in the lab may be counted too, and sooner: wait for all of these.)
      let counts = await upstreamCounts(lab);
      for (
        let i = 0;
        i < 20 && !(counts.get("NOERROR")! >= 5 && counts.get("NXDOMAIN")! >= 1);
        i++
      ) {
        await new Promise((r) => setTimeout(r, 100));
        counts = await upstreamCounts(lab);
      }
      assertEquals(counts.get("NOERROR")! >= 5, true, `upstream counts: ${[...counts]}`);
      assertEquals(counts.get("NXDOMAIN")! >= 1, true, `upstream counts: ${[...counts]}`);
      assertMatch(await dig(lab, "hello.demo"), /^198\.1[89]\./);
    });
  },
});

Deno.test({
  name:
    "e2e: with a plugin resolver that answers names of its own, tun_route still asks it (the loop forwards nothing itself)",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await withResolver(async (lab) => {
      const dir = `${lab.dir}/plugins`;
      await Deno.mkdir(dir);
      await Deno.writeTextFile(`${dir}/internal-names.ts`, INTERNAL_NAMES);
      await startDemo(lab, ["--dns-mode", "tun_route", "--plugin-dir", dir]);
      const vip = await dig(lab, "grafana.internal");
      assertMatch(vip, /^198\.1[89]\./, "the plugin's name gets a VIP");
      assertEquals(await dig(lab, "hello.demo"), vip, "the same target, the same VIP");
      assertEquals(await dig(lab, "www.public-example.com"), "203.0.113.7");
    });
  },
});
