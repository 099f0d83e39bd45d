/**
 * DNS: queries per second and latency for cluster names (answered from the watch cache) and for
 * forwarded names, over UDP sockets, with 50 (or 4: a laptop's load) queries in flight from a
 * client in another Worker (the server keeps the main thread, as with real clients). Forwarded
 * names go to a local upstream that answers at once, on loopback, and to one that answers
 * {@link DISTANT_RESOLVER_MS} ms later, as a resolver on the LAN or at the ISP does; each is also
 * queried directly, as the baseline. Medians of three alternating rounds.
 */
import { ClusterStore } from "../../core/cluster/store.ts";
import { ClusterAnswerer } from "../../core/dns/answer.ts";
import { DnsServer } from "../../core/dns/server.ts";
import { UpstreamResolver } from "../../core/dns/upstream.ts";
import { parseVipBase, VipPool } from "../../core/vip.ts";
import { listenPolledUdp } from "../../ffi/linux/udp_server.ts";
import { systemSocketTransport } from "../../plugins/dns/socket_upstream.ts";
import type { BenchResult } from "./types.ts";
import { medians } from "./median.ts";
import type { DnsLoadResult } from "./dns_load.ts";
import { compareTunRoute } from "./dns_tun_route.ts";
import { mainThreadCpuSeconds } from "./cpu_time.ts";

/** Starts a Worker with `job` and resolves with its first message. */
function worker<T>(job: Record<string, unknown>): { result: Promise<T>; stop(): void } {
  const w = new Worker(new URL("./dns_worker.ts", import.meta.url), { type: "module" });
  const result = new Promise<T>((resolve, reject) => {
    w.onmessage = (e) => resolve(e.data);
    w.onerror = (e) => reject(new Error(e.message));
  });
  w.postMessage(job);
  return { result, stop: () => w.terminate() };
}

/** `total` queries for `name` with `inFlight` outstanding, from a client in its own Worker. */
async function load(port: number, name: string, total: number, inFlight = 50) {
  const client = worker<DnsLoadResult>({ role: "load", port, name, total, inFlight });
  try {
    return await client.result;
  } finally {
    client.stop();
  }
}

type Row =
  | "cluster"
  | "light"
  | "lightDirect"
  | "forwarded"
  | "direct"
  | "forwardedLight"
  | "directLight"
  | "forwardedFar"
  | "directFar"
  | "forwardedFarLight"
  | "directFarLight";

const ROUNDS = Number(Deno.env.get("K8STUN_BENCH_DNS_ROUNDS") ?? 3);
/** Scales every round's query counts (0.2 for a quick look while iterating). */
const SCALE = Number(Deno.env.get("K8STUN_BENCH_DNS_SCALE") ?? 1);
/**
 * `forwarded` runs only the forwarded rows (and their baseline), e.g. under a profiler;
 * `tun_route` only the lab comparison in the default DNS mode (dns_tun_route.ts).
 */
const ONLY = Deno.env.get("K8STUN_BENCH_DNS_ONLY");
const count = (n: number) => Math.max(100, Math.round(n * SCALE));
/** How long the distant upstream takes to answer, ms. */
const DISTANT_RESOLVER_MS = 5;

export async function run(): Promise<BenchResult[]> {
  if (ONLY === "tun_route") return await compareTunRoute(SCALE);
  const rows = await inProcessRows();
  // Its own lab and processes, once the in-process servers are gone.
  return ONLY === "forwarded" ? rows : [...rows, ...await compareTunRoute(SCALE)];
}

/** The rows measured in this process: cluster names, and forwarding with forward mode's sockets. */
async function inProcessRows(): Promise<BenchResult[]> {
  const store = new ClusterStore();
  store.applyNamespace({ metadata: { name: "demo" } });
  store.applyService({
    metadata: { namespace: "demo", name: "hello" },
    spec: { clusterIP: "10.96.0.5", ports: [] },
  });
  const vips = new VipPool({ network: parseVipBase(undefined), staleMs: 0 });
  const answerer = new ClusterAnswerer(store, vips, {
    clusterDomain: "cluster.local",
    isNamespace: (ns) => ns === "demo",
    explicitNamespaces: new Set(),
  });
  // A local upstream answering every query at once, and one answering 5 ms later (a resolver on
  // the LAN or at the ISP), each behind a server of its own with forward mode's sockets.
  const [near, far] = [
    await forwardingServer(answerer, 0),
    await forwardingServer(answerer, DISTANT_RESOLVER_MS),
  ];
  const [port, upstreamPort] = [near.port, near.upstreamPort];
  try {
    // Three rounds, k8stun and its baseline alternating, and the median of each figure.
    const rounds: Partial<Record<Row, DnsLoadResult>>[] = [];
    /** The server thread's CPU per forwarded query, µs: what the machine's load does not move. */
    const serverCpu: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const figures: Partial<Record<Row, DnsLoadResult>> = {};
      if (ONLY !== "forwarded") {
        figures.cluster = await load(port, "hello.demo", count(40_000));
        figures.light = await load(port, "hello.demo", count(20_000), 4);
        figures.lightDirect = await load(upstreamPort, "hello.demo", count(20_000), 4);
      }
      const cpuBefore = mainThreadCpuSeconds();
      figures.forwarded = await load(port, "example.test", count(10_000));
      serverCpu.push((mainThreadCpuSeconds() - cpuBefore) * 1e6 / count(10_000));
      figures.direct = await load(upstreamPort, "example.test", count(10_000));
      // At the load of a laptop (a few lookups at once), what forwarding adds to each answer.
      figures.forwardedLight = await load(port, "example.test", count(10_000), 4);
      figures.directLight = await load(upstreamPort, "example.test", count(10_000), 4);
      // Where users are: the resolver milliseconds away, not on this machine's loopback.
      figures.forwardedFar = await load(far.port, "example.test", count(20_000));
      figures.directFar = await load(far.upstreamPort, "example.test", count(20_000));
      figures.forwardedFarLight = await load(far.port, "example.test", count(2_000), 4);
      figures.directFarLight = await load(far.upstreamPort, "example.test", count(2_000), 4);
      rounds.push(figures);
    }
    const pick = (key: Row): DnsLoadResult => medians(rounds.map((r) => r[key]!));
    const lost = rounds.flatMap((r) => Object.values(r)).reduce((sum, r) => sum + r.lost, 0);
    const [forwarded, direct] = [pick("forwarded"), pick("direct")];
    const [forwardedLight, directLight] = [pick("forwardedLight"), pick("directLight")];
    const [forwardedFar, directFar] = [pick("forwardedFar"), pick("directFar")];
    const [forwardedFarLight, directFarLight] = [pick("forwardedFarLight"), pick("directFarLight")];
    /** One figure of the forwarded rows against the upstream queried directly. */
    const versusDirect = (
      name: string,
      key: keyof DnsLoadResult,
      k8stun: DnsLoadResult,
      upstream: DnsLoadResult,
      note?: string,
    ): BenchResult => ({
      name,
      value: k8stun[key],
      unit: key === "qps" ? "queries/s" : "ms",
      baseline: { name: "upstream queried directly", value: upstream[key] },
      ...(note ? { note } : {}),
    });
    const added = (k8stun: DnsLoadResult, upstream: DnsLoadResult) =>
      `${(k8stun.p99 - upstream.p99).toFixed(2)} ms added at p99`;
    const serverCpuMedian = serverCpu.sort((a, b) => a - b)[Math.floor(serverCpu.length / 2)];
    const forwardedRows: BenchResult[] = [
      versusDirect("DNS forwarded names, 50 in flight", "qps", forwarded, direct),
      versusDirect("DNS forwarded names p50", "p50", forwarded, direct),
      versusDirect(
        "DNS forwarded names p99",
        "p99",
        forwarded,
        direct,
        `${added(forwarded, direct)}; server thread ${
          serverCpuMedian.toFixed(0)
        } µs CPU per query` +
          (lost > 0 ? `; ${lost} queries lost over all rounds (UDP on a loaded machine)` : ""),
      ),
      versusDirect("DNS forwarded names p50, 4 in flight", "p50", forwardedLight, directLight),
      versusDirect(
        "DNS forwarded names p99, 4 in flight",
        "p99",
        forwardedLight,
        directLight,
        added(forwardedLight, directLight),
      ),
      versusDirect(
        `DNS forwarded names, resolver ${DISTANT_RESOLVER_MS} ms away, 50 in flight`,
        "qps",
        forwardedFar,
        directFar,
      ),
      versusDirect(
        `DNS forwarded names p99, resolver ${DISTANT_RESOLVER_MS} ms away, 50 in flight`,
        "p99",
        forwardedFar,
        directFar,
        added(forwardedFar, directFar),
      ),
      versusDirect(
        `DNS forwarded names p50, resolver ${DISTANT_RESOLVER_MS} ms away, 4 in flight`,
        "p50",
        forwardedFarLight,
        directFarLight,
      ),
      versusDirect(
        `DNS forwarded names p99, resolver ${DISTANT_RESOLVER_MS} ms away, 4 in flight`,
        "p99",
        forwardedFarLight,
        directFarLight,
        added(forwardedFarLight, directFarLight),
      ),
    ];
    if (ONLY === "forwarded") return forwardedRows;
    const [cluster, light, lightDirect] = [pick("cluster"), pick("light"), pick("lightDirect")];
    return [
      { name: "DNS cluster names, 50 in flight", value: cluster.qps, unit: "queries/s" },
      {
        name: "DNS cluster names p50, 50 in flight",
        value: cluster.p50,
        unit: "ms",
        note: `p99 ${cluster.p99.toFixed(2)} ms (queueing: 50 outstanding at full load)`,
      },
      {
        name: "DNS cluster names p50, 4 in flight",
        value: light.p50,
        unit: "ms",
        note: `p99 ${light.p99.toFixed(2)} ms at ${Math.round(light.qps)} queries/s`,
        baseline: { name: "trivial UDP echo server", value: lightDirect.p50 },
      },
      {
        name: "DNS cluster names p99, 4 in flight",
        value: light.p99,
        unit: "ms",
        baseline: { name: "trivial UDP echo server", value: lightDirect.p99 },
      },
      ...forwardedRows,
    ];
  } finally {
    await near.close();
    await far.close();
  }
}

/**
 * A DNS server forwarding to an upstream (in a Worker) that answers `delayMs` after each query,
 * with forward mode's sockets as cli/tunnel.ts assembles them.
 */
async function forwardingServer(answerer: ClusterAnswerer, delayMs: number) {
  const upstream = worker<{ port: number }>({ role: "upstream", delayMs });
  const upstreamPort = (await upstream.result).port;
  const resolver = new UpstreamResolver([`127.0.0.1:${upstreamPort}`], systemSocketTransport);
  const server = new DnsServer(answerer, resolver);
  const listener = server.listen(
    "127.0.0.1",
    0,
    Deno.build.os === "linux" ? listenPolledUdp : undefined,
  );
  return {
    port: listener.addresses[0].port,
    upstreamPort,
    async close() {
      listener.close();
      await resolver.close(); // its sockets would keep the process alive
      upstream.stop();
    },
  };
}
