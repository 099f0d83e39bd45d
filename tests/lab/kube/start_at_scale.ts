/**
 * Runs inside a lab namespace (root): brings up a cluster of {@link STARTUP_SCALE} — the simulator
 * (`sim`) or the real control plane (`kube BIN_DIR`) on the lab's loopback — then starts
 * `k8stun run` against it `ROUNDS` times, each with a fresh VIP state directory (a first start:
 * every VIP is allocated and persisted), and prints one JSON line with each round's start-up
 * phases as k8stun logs them at debug level, its RSS once ready, and what `dig` answered for one
 * service. Creating the objects is not part of any figure.
 *
 *   deno run -A start_at_scale.ts sim|kube [BIN_DIR] [ROUNDS]
 */
import { startSimCluster } from "../../../sim/mod.ts";
import { LabProcess } from "../lab.ts";
import { startControlPlane } from "./control_plane.ts";
import {
  applyScaleFixture,
  scaleNamespaces,
  scaleServices,
  scaleSimFixture,
  STARTUP_SCALE,
} from "./scale.ts";

/** One start of k8stun, as measured. */
export interface StartupRound {
  /** From the first request to the API until every initial list is indexed (ms). */
  listMs: number;
  /** Objects in the store after the lists. */
  objects: number;
  /** From the lists' completion until DNS answers and the VIP routes are up (ms). */
  readyMs: number;
  /** k8stun's resident memory once ready (bytes). */
  rssBytes: number;
}

/** The script's JSON line. */
export interface StartupReport {
  rounds: StartupRound[];
  /** `dig +short NAME` in the lab after the last start, and the VIP k8stun's banner listed. */
  dig: { name: string; answer: string; bannerVip?: string };
}

const MAIN = new URL("../../../cli/main.ts", import.meta.url).pathname;

if (import.meta.main) {
  const [cluster, ...rest] = Deno.args;
  const bin = cluster === "kube" ? rest.shift() : undefined;
  const rounds = Number(rest[0] ?? 1);
  if ((cluster !== "sim" && cluster !== "kube") || (cluster === "kube" && !bin) || !(rounds > 0)) {
    console.error("usage: start_at_scale.ts sim|kube [BIN_DIR] [ROUNDS]");
    Deno.exit(2);
  }
  const work = await Deno.makeTempDir({ prefix: "k8stun-scale-" });
  const stops: (() => Promise<void>)[] = [() => Deno.remove(work, { recursive: true })];
  try {
    let kubeconfig: string;
    if (cluster === "sim") {
      const sim = await startSimCluster({ fixture: scaleSimFixture(STARTUP_SCALE) });
      stops.push(() => sim.close());
      kubeconfig = `${work}/kubeconfig`;
      await sim.writeKubeconfig(kubeconfig);
    } else {
      const started = performance.now();
      const cp = await startControlPlane({ bin });
      stops.push(() => cp.stop());
      const up = performance.now();
      await applyScaleFixture(cp, STARTUP_SCALE);
      console.error(
        `control plane up in ${seconds(up - started)} s, objects created in ${
          seconds(performance.now() - up)
        } s`,
      );
      kubeconfig = cp.kubeconfigPath;
    }
    const report: StartupReport = { rounds: [], dig: { name: "", answer: "" } };
    for (let round = 0; round < rounds; round++) {
      const last = round === rounds - 1;
      const measured = await startOnce(kubeconfig, `${work}/state-${round}`, last);
      report.rounds.push(measured.round);
      if (last) report.dig = measured.dig;
    }
    console.log(JSON.stringify(report));
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => {});
  }
}

/** Starts k8stun once, reads its start-up figures, optionally digs one service, stops it. */
async function startOnce(kubeconfig: string, stateDir: string, dig: boolean) {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      MAIN,
      "run",
      "--kubeconfig",
      kubeconfig,
      "-n",
      scaleNamespaces(STARTUP_SCALE).join(","),
      "--dns-mode",
      "forward",
      "--log-level",
      "debug",
    ],
    env: { XDG_STATE_HOME: stateDir },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const k8stun = new LabProcess(child);
  try {
    await k8stun.waitForOutput(/k8stun is ready on/, 120_000);
    const status = await Deno.readTextFile(`/proc/${k8stun.pid}/status`);
    const listed = k8stun.output.match(
      /initial lists complete and indexed in (\d+) ms \((\d+) objects/,
    );
    const ready = k8stun.output.match(/VIP routes ready (\d+) ms after the lists/);
    if (!listed || !ready) throw new Error(`no start-up figures in the output:\n${k8stun.output}`);
    const round: StartupRound = {
      listMs: Number(listed[1]),
      objects: Number(listed[2]),
      readyMs: Number(ready[1]),
      rssBytes: Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024,
    };
    const service = scaleServices(STARTUP_SCALE)[Math.floor(STARTUP_SCALE.services / 2)];
    const name = `${service.name}.${service.namespace}`;
    if (!dig) return { round, dig: { name, answer: "" } };
    const out = await new Deno.Command("dig", { args: ["+short", name], stdout: "piped" }).output();
    const bannerVip = k8stun.output.match(
      new RegExp(`^(\\S+)\\s+service ${service.namespace}/${service.name}$`, "m"),
    )?.[1];
    return {
      round,
      dig: { name, answer: new TextDecoder().decode(out.stdout).trim(), bannerVip },
    };
  } finally {
    k8stun.signal("SIGTERM");
    await k8stun.status;
  }
}

function seconds(ms: number): string {
  return (ms / 1000).toFixed(1);
}
