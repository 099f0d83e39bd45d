/**
 * Benchmark, not a test: a 64 MiB echo through one SPDY port-forward session over TLS to the
 * simulator, dialled with Deno's TLS (the dialer's path) and with `node:tls` (client-node's agent,
 * the path before), in alternating rounds. Prints MiB/s and this process's CPU time per MiB
 * echoed per round, and the medians. With `--external` the simulator runs in a child process, so
 * the CPU figure is the client's alone (the session, its WebSocket and TLS): steadier than
 * throughput on a shared machine.
 *
 *     tools/deno run --allow-all tests/portforward/tls_throughput.ts [rounds] [--external]
 */
import { ApiAccess } from "../../core/k8s/api_access.ts";
import process from "node:process";
import { DEMO_FIXTURE, startSimCluster } from "../../sim/mod.ts";
import { PortForwardSession } from "../../plugins/portforward/forward_session.ts";
import { type ApiRequestOptions, apiRequestOptions } from "../../core/k8s/api_connection.ts";
import { startProfile, summarize } from "../bench/tier_profile.ts";
import { median } from "../bench/median.ts";

const MiB = 1024 * 1024;
const TOTAL = 64 * MiB;
const rounds = Number(Deno.args.find((a) => /^\d+$/.test(a)) ?? 3);
const external = Deno.args.includes("--external");

/** The simulator in this process, or in a child with its kubeconfig in a file. */
async function simulator(): Promise<{ kubeconfig: string; url: string } & AsyncDisposable> {
  if (!external) {
    const sim = await startSimCluster({ fixture: DEMO_FIXTURE });
    return { kubeconfig: sim.kubeconfig(), url: sim.url, [Symbol.asyncDispose]: () => sim.close() };
  }
  const file = await Deno.makeTempFile({ suffix: ".kubeconfig" });
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("../../cli/main.ts", import.meta.url).pathname, "sim"]
      .concat(["--kubeconfig-out", file]),
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let output = "";
  while (!/kubeconfig: /.test(output)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`the simulator ended: ${output}`);
    output += value;
  }
  reader.releaseLock();
  child.stdout.cancel().catch(() => {});
  const kubeconfig = await Deno.readTextFile(file);
  return {
    kubeconfig,
    url: output.match(/API: (\S+)/)![1],
    async [Symbol.asyncDispose]() {
      child.kill("SIGTERM");
      await child.status;
      await Deno.remove(file);
    },
  };
}

await using sim = await simulator();
const access = ApiAccess.fromText(sim.kubeconfig);
const url = `${
  sim.url.replace(/^http/, "ws")
}/api/v1/namespaces/demo/pods/echo-5c6b-m9t2z/portforward`;

const paths: Record<string, () => Promise<ApiRequestOptions>> = {
  "deno tls": () => apiRequestOptions(access, { handshakeTimeoutMs: 10_000 }),
  "node:tls": async () => ({
    handshakeTimeout: 10_000,
    headers: (await access.credentials()).headers,
    ca: access.certificateAuthority(),
  }),
};

/** MiB/s, and CPU ms (user + system, all threads) per MiB echoed. */
async function echo(options: ApiRequestOptions): Promise<[number, number]> {
  const session = await PortForwardSession.open(url, options);
  try {
    const duplex = await session.openStream(7007, new AbortController().signal);
    const chunk = new Uint8Array(MiB).fill(7);
    const started = performance.now();
    const cpu = process.cpuUsage();
    const writer = duplex.writable.getWriter();
    const writing = (async () => {
      for (let sent = 0; sent < TOTAL; sent += MiB) await writer.write(chunk);
      await writer.close();
    })();
    let received = 0;
    for await (const bytes of duplex.readable) received += bytes.length;
    await writing;
    if (received !== TOTAL) throw new Error(`echoed ${received} of ${TOTAL} bytes`);
    const used = process.cpuUsage(cpu);
    return [
      (TOTAL / MiB) / ((performance.now() - started) / 1000),
      (used.user + used.system) / 1000 / (TOTAL / MiB),
    ];
  } finally {
    session.close();
  }
}

// With K8STUN_BENCH_PROFILE=FILE (and `--inspect`), the first Deno TLS round is profiled.
const profileFile = Deno.env.get("K8STUN_BENCH_PROFILE");
const results: Record<string, [number, number][]> = {};
for (let round = 0; round < rounds; round++) {
  for (const [name, options] of Object.entries(paths)) {
    const inspector = profileFile && round === 0 && name === "deno tls"
      ? (await (await fetch("http://127.0.0.1:9229/json/list")).json())[0].webSocketDebuggerUrl
      : undefined;
    const profiling = inspector ? await startProfile(inspector) : undefined;
    const [mibps, cpuMs] = await echo(await options());
    if (profiling) {
      const profile = await profiling.stop();
      await Deno.writeTextFile(profileFile!, JSON.stringify(profile));
      console.log(summarize(profile, 45));
    }
    (results[name] ??= []).push([mibps, cpuMs]);
    console.log(
      `round ${round + 1} ${name}: ${mibps.toFixed(1)} MiB/s, ${cpuMs.toFixed(2)} CPU ms/MiB`,
    );
  }
}
for (const [name, values] of Object.entries(results)) {
  console.log(
    `${name}: median ${median(values.map((v) => v[0])).toFixed(1)} MiB/s, ${
      median(values.map((v) => v[1])).toFixed(2)
    } CPU ms/MiB`,
  );
}
