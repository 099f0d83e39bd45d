/**
 * Start-up at scale: `k8stun run` against 1,000 Services in 50 namespaces (with their
 * EndpointSlices and 100 pods), pre-allocating a VIP for each, in a lab namespace — once against
 * the simulator, once against the real control plane when it is built. Figures are the medians
 * of three starts, each a first start (no remembered VIPs): the initial lists until indexed, DNS
 * and VIP routes ready after the lists, objects listed per second, RSS once ready. Creating the
 * objects in the API server is not measured. Targets: lists ≤ 2 s, ready ≤ 300 ms after them.
 */
import { cachedBinaries } from "../lab/kube/control_plane.ts";
import { STARTUP_SCALE } from "../lab/kube/scale.ts";
import type { StartupReport, StartupRound } from "../lab/kube/start_at_scale.ts";
import { Lab, labUnavailable } from "../lab/lab.ts";
import type { BenchResult } from "./types.ts";
import { median } from "./median.ts";

const ROUNDS = 3;
const SCRIPT = new URL("../lab/kube/start_at_scale.ts", import.meta.url).pathname;

async function measure(args: string[]): Promise<StartupReport> {
  await using lab = await Lab.create({ resolvConf: "nameserver 127.0.0.1\noptions timeout:1\n" });
  const out = await lab.run(Deno.execPath(), ["run", "-A", SCRIPT, ...args, String(ROUNDS)], {
    timeoutMs: 600_000,
  });
  const line = out.stdout.trim().split("\n").at(-1) ?? "";
  if (out.code !== 0 || !line.startsWith("{")) {
    throw new Error(`start_at_scale.ts failed (exit ${out.code}): ${out.stderr.slice(-2000)}`);
  }
  return JSON.parse(line);
}

function figures(label: string, rounds: StartupRound[]): BenchResult[] {
  const all = (f: (r: StartupRound) => number) => rounds.map(f).map(Math.round).join(", ");
  return [
    {
      name: `${label}: initial lists complete and indexed`,
      value: median(rounds.map((r) => r.listMs)),
      unit: "ms",
      note:
        `runs ${all((r) => r.listMs)} ms; ${
          rounds[0].objects
        } objects (${STARTUP_SCALE.services} ` +
        `services in ${STARTUP_SCALE.namespaces} namespaces); target ≤ 2000 ms`,
    },
    {
      name: `${label}: DNS and VIP routes ready after lists`,
      value: median(rounds.map((r) => r.readyMs)),
      unit: "ms",
      note: `runs ${all((r) => r.readyMs)} ms; target ≤ 300 ms`,
    },
    {
      name: `${label}: objects listed and indexed`,
      value: median(rounds.map((r) => r.objects / (r.listMs / 1000))),
      unit: "objects/s",
    },
    {
      name: `${label}: RSS once ready`,
      value: median(rounds.map((r) => r.rssBytes)) / 2 ** 20,
      unit: "MiB",
    },
  ];
}

export async function run(): Promise<BenchResult[]> {
  const why = labUnavailable();
  if (why) return [{ name: "startup", value: 0, unit: "skipped", note: why }];
  const results = figures("simulator", (await measure(["sim"])).rounds);
  const bin = await cachedBinaries();
  if (bin === undefined) {
    results.push({
      name: "real control plane",
      value: 0,
      unit: "skipped",
      note: "not built (sh tests/lab/kube/build.sh builds it)",
    });
  } else {
    results.push(
      ...figures("real API server", (await measure(["kube", bin])).rounds),
    );
  }
  return results;
}
