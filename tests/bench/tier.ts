/**
 * Through the real kube-apiserver and kwok (the lab's cluster tier): the same echo client by name
 * through k8stun's TUN against client-go's own port-forward (kubectl's code path) to the same pod,
 * medians of three alternating rounds: 20 MiB bidirectional echo, 1 MiB echo, a new connection
 * with a 16 B echo, and the CPU each path's process used per gigabit of the 20 MiB echo; and the
 * same for the direct `Upgrade: SPDY/3.1` transport, k8stun's dialer against client-go's; then the
 * 20 MiB and 1 MiB echoes and new connections with {@link REMOTE_RTT_MS} ms between the clients
 * and the API server, where a round trip saved per connection shows. Skipped with the reason when the lab,
 * the control plane or the Go baselines are not built (`sh tests/lab/kube/build.sh`,
 * `sh tests/lab/kube/build_bench_tools.sh`).
 */
import { cachedBenchTools } from "../lab/kube/bench_tools.ts";
import { cachedBinaries } from "../lab/kube/control_plane.ts";
import { Lab, labUnavailable } from "../lab/lab.ts";
import type { BenchResult } from "./types.ts";
import { median } from "./median.ts";

const ROUNDS = 3;
const BULK_BYTES = 20 * 1024 * 1024;
/**
 * The emulated round trip to a remote API server for the remote rows, ms (a cluster in a nearby
 * cloud region); tier_in_lab.ts puts it between those clients and the API server.
 */
const REMOTE_RTT_MS = 10;

interface PathFigures {
  bulkMbps: number;
  mediumMbps: number;
  connectMs: number;
  bulkCpu: number;
  serverCpu: number;
  bulkThreads: Record<string, number>;
}

/** CPU seconds per gigabit of echo payload (one way), from a median round. */
const perGigabit = (cpuSeconds: number) => cpuSeconds / (BULK_BYTES * 8 / 1e9);

/** The k8stun threads' share of the 20 MiB echo's CPU, biggest first, e.g. "main 61 %". */
function threadShares(rounds: PathFigures[], bulkSeconds: number): string {
  const total = new Map<string, number>();
  for (const round of rounds) {
    for (const [name, seconds] of Object.entries(round.bulkThreads)) {
      total.set(name, (total.get(name) ?? 0) + seconds / rounds.length);
    }
  }
  return [...total].filter(([, s]) => s > 0.005).sort((a, b) => b[1] - a[1]).slice(0, 5)
    .map(([name, s]) => `${name} ${Math.round(100 * s / bulkSeconds)} %`).join(", ");
}

export async function run(): Promise<BenchResult[]> {
  const why = labUnavailable();
  if (why) return [{ name: "tier", value: 0, unit: "skipped", note: why }];
  const kubeBin = await cachedBinaries();
  if (!kubeBin) {
    return [{
      name: "tier",
      value: 0,
      unit: "skipped",
      note: "the control plane is not built (sh tests/lab/kube/build.sh)",
    }];
  }
  const toolsBin = await cachedBenchTools();
  if (!toolsBin) {
    return [{
      name: "tier",
      value: 0,
      unit: "skipped",
      note: "client-go's port-forward is not built (sh tests/lab/kube/build_bench_tools.sh)",
    }];
  }
  await using lab = await Lab.create({ resolvConf: "nameserver 127.0.0.1\noptions timeout:1\n" });
  const script = new URL("./tier_in_lab.ts", import.meta.url).pathname;
  const out = await lab.run(
    Deno.execPath(),
    ["run", "-A", script, kubeBin, toolsBin, `${ROUNDS}`, `${REMOTE_RTT_MS}`],
    {
      timeoutMs: 600_000,
    },
  );
  if (Deno.env.get("K8STUN_BENCH_PROFILE")) console.error(out.stderr);
  const line = out.stdout.trim().split("\n").at(-1) ?? "";
  if (out.code !== 0 || !line.startsWith("[")) {
    throw new Error(`the tier run failed (exit ${out.code}): ${out.stderr.slice(-3000)}`);
  }
  type Path = "k8stun" | "clientGo" | "direct" | "clientGoSpdy";
  type Figure = keyof Omit<PathFigures, "bulkThreads">;
  type Remote = Record<
    "k8stunRemote" | "clientGoRemote",
    Pick<PathFigures, "bulkMbps" | "mediumMbps" | "connectMs">
  >;
  const rounds = JSON.parse(line) as (Record<Path, PathFigures> & Remote)[];
  const figure = (path: Path, key: Figure) => median(rounds.map((r) => r[path][key]));
  /** The four figures of `path` against `baseline`, named after `label`. */
  const compare = (label: string, path: Path, baseline: Path, baselineName: string) => {
    const row = (
      name: string,
      key: Figure,
      unit: string,
      scale = (v: number) => v,
    ): BenchResult => ({
      name: `${label}${name}`,
      value: scale(figure(path, key)),
      unit,
      baseline: { name: baselineName, value: scale(figure(baseline, key)) },
    });
    return [
      row("20 MiB bidirectional echo", "bulkMbps", "Mbit/s"),
      row("1 MiB echo (median of 5)", "mediumMbps", "Mbit/s"),
      row("new connection + 16 B echo, p50 of 20", "connectMs", "ms"),
      row(
        "CPU per gigabit of the 20 MiB echo (payload one way)",
        "bulkCpu",
        "CPU s/Gbit",
        perGigabit,
      ),
    ];
  };
  const throughTun = compare(
    "by name through the TUN: ",
    "k8stun",
    "clientGo",
    "client-go port-forward",
  );
  const [bulk, , , cpu] = throughTun;
  const bulkSeconds = BULK_BYTES * 8 / 1e6 / bulk.value;
  // The API server and kubelet carry every byte too, on the same two cores: what each client
  // costs them is part of the throughput.
  const serverSide = (path: Path) => perGigabit(figure(path, "serverCpu")).toFixed(2);
  cpu.note = `k8stun threads during the echo: ${
    threadShares(rounds.map((r) => r.k8stun), bulkSeconds)
  } of one core; API server + kwok ${serverSide("k8stun")} CPU s/Gbit for k8stun, ${
    serverSide("clientGo")
  } for client-go`;
  /** One figure through the distant API server: k8stun's dialer against client-go. */
  const remote = (
    name: string,
    key: "bulkMbps" | "mediumMbps" | "connectMs",
    unit: string,
  ): BenchResult => ({
    name: `${REMOTE_RTT_MS} ms round trip to the API server (k8stun's dialer): ${name}`,
    value: median(rounds.map((r) => r.k8stunRemote[key])),
    unit,
    baseline: {
      name: "client-go port-forward",
      value: median(rounds.map((r) => r.clientGoRemote[key])),
    },
  });
  return [
    ...throughTun,
    ...compare(
      "direct Upgrade: SPDY/3.1 (dialer alone): ",
      "direct",
      "clientGoSpdy",
      "client-go, SPDY dialer only",
    ),
    remote("20 MiB bidirectional echo", "bulkMbps", "Mbit/s"),
    remote("1 MiB echo (median of 5)", "mediumMbps", "Mbit/s"),
    remote("new connection + 16 B echo, p50 of 20", "connectMs", "ms"),
  ];
}
