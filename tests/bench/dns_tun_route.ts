/**
 * DNS in the default mode, `tun_route`, as users meet it: in a lab whose resolver is a real server
 * in a peer namespace behind a veth link (tests/lab/upstream_dns.ts), a client in the lab asks the
 * resolver for a name outside the cluster. With `k8stun demo` running, the query is diverted into
 * the TUN and forwarded by k8stun (docs/architecture.md, "A DNS query"); without it, it goes to the
 * resolver directly. Three rounds alternate the two — k8stun is started and stopped each round —
 * at 4 queries in flight (a laptop's load) and at 50. A last load of each round reads k8stun's CPU
 * per forwarded name from its threads' schedstat (cpu_time.ts).
 */
import { Lab, labUnavailable } from "../lab/lab.ts";
import type { BenchResult } from "./types.ts";
import type { DnsLoadResult } from "./dns_load.ts";
import { median, medians } from "./median.ts";
import { threadCpuSeconds } from "./cpu_time.ts";

const here = (file: string) => new URL(file, import.meta.url).pathname;
const ROUNDS = 3;
/** The lab's resolver (lab.addPeer's address) and a name it answers at once. */
const RESOLVER = "10.77.0.2";
const NAME = "www.public-example.com";

type Row = "light" | "busy";

/** The rows, or one skipped line when the lab cannot be built here (not root). */
export async function compareTunRoute(scale = 1): Promise<BenchResult[]> {
  const unavailable = labUnavailable();
  if (unavailable) {
    return [{ name: "DNS in tun_route", value: 0, unit: "skipped", note: unavailable }];
  }
  await using lab = await Lab.create({ resolvConf: `nameserver ${RESOLVER}\n` });
  const peer = await lab.addPeer();
  if (peer.address !== RESOLVER) throw new Error(`the lab's peer is ${peer.address}`);
  await peer.spawn(Deno.execPath(), ["run", "-A", here("../lab/upstream_dns.ts")])
    .waitForOutput(/READY/, 30_000);
  const count = (n: number) => Math.max(100, Math.round(n * scale));
  const load = async (total: number, inFlight: number): Promise<DnsLoadResult> => {
    const args = [RESOLVER, "53", NAME, String(total), String(inFlight)];
    const out = await lab.run(Deno.execPath(), ["run", "-A", here("./dns_load.ts"), ...args], {
      timeoutMs: 120_000,
    });
    if (out.code !== 0) throw new Error(`the DNS load failed: ${out.stderr}`);
    return JSON.parse(out.stdout.trim().split("\n").at(-1)!);
  };
  const measure = async () => ({
    light: await load(count(4_000), 4),
    busy: await load(count(10_000), 50),
  });
  /** k8stun's CPU per query (µs), by thread name, over `total` queries with 50 in flight. */
  const cpuPerQuery = async (pid: number, total: number) => {
    const before = await threadCpuSeconds(pid);
    await load(total, 50);
    const after = await threadCpuSeconds(pid);
    const perQuery: Record<string, number> = {};
    for (const [name, seconds] of after) {
      perQuery[name] = ((seconds - (before.get(name) ?? 0)) / total) * 1e6;
    }
    return perQuery;
  };
  const rounds: { direct: Record<Row, DnsLoadResult>; k8stun: Record<Row, DnsLoadResult> }[] = [];
  const cpu: Record<string, number>[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const direct = await measure();
    const k8stun = lab.spawn(Deno.execPath(), [
      "run",
      "-A",
      here("../../cli/main.ts"),
      "demo",
      "--dns-mode",
      "tun_route",
    ]);
    await k8stun.waitForOutput(/k8stun is ready on/, 60_000);
    if (!/now reach k8stun through/.test(k8stun.output)) {
      throw new Error(`k8stun did not divert DNS to ${RESOLVER}:\n${k8stun.output.slice(-2000)}`);
    }
    const through = await measure();
    cpu.push(await cpuPerQuery(k8stun.child.pid, count(10_000)));
    k8stun.signal("SIGINT");
    await k8stun.child.status; // its policy rules are gone: the next round's direct figures are
    rounds.push({ direct, k8stun: through });
  }
  const pick = (path: "direct" | "k8stun", row: Row) => medians(rounds.map((r) => r[path][row]));
  const versus = (name: string, row: Row, key: keyof DnsLoadResult): BenchResult => {
    const [k8stun, direct] = [pick("k8stun", row), pick("direct", row)];
    return {
      name,
      value: k8stun[key],
      unit: key === "qps" ? "queries/s" : "ms",
      baseline: { name: "the resolver asked directly", value: direct[key] },
      ...(key === "p99" ? { note: `${(k8stun.p99 - direct.p99).toFixed(2)} ms added at p99` } : {}),
    };
  };
  const cpuMedian = (name: string) => median(cpu.map((c) => c[name] ?? 0));
  return [
    versus("DNS in tun_route, forwarded names p50, 4 in flight", "light", "p50"),
    versus("DNS in tun_route, forwarded names p99, 4 in flight", "light", "p99"),
    versus("DNS in tun_route, forwarded names, 50 in flight", "busy", "qps"),
    versus("DNS in tun_route, forwarded names p99, 50 in flight", "busy", "p99"),
    {
      name: "DNS in tun_route, k8stun CPU per forwarded name, 50 in flight",
      value: median(cpu.map((c) => Object.values(c).reduce((a, b) => a + b, 0))),
      unit: "CPU µs",
      note: `main thread ${cpuMedian("deno").toFixed(1)}, packet loop ${
        cpuMedian("worker-1").toFixed(1)
      }, V8 helpers ${cpuMedian("V8 DefaultWorke").toFixed(1)} µs (medians)`,
    },
  ];
}
