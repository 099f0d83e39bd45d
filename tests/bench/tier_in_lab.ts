/**
 * Runs inside a lab namespace (started by tier.ts): brings the real control plane up on the lab's
 * loopback with one echo pod behind kwok and a Service `echo.bench` in front of it, starts
 * `k8stun run` in TUN mode and client-go's port-forward (portforward_client/main.go) to the same
 * pod, and measures both with the same echo client (echo_client.ts) in alternating rounds: the
 * name through k8stun's TUN against client-go's local port; then the direct `Upgrade: SPDY/3.1`
 * transport: k8stun's dialer alone (dialer_forward.ts) against client-go with only its SPDY
 * dialer; then, with a delaying relay (delay_proxy.ts) between the clients and the API server,
 * k8stun's dialer as the TUN uses it for a port that accepted recently against client-go. Prints
 * one JSON line: per path and round, the figures and the CPU its process used during the 20 MiB
 * echo (per thread).
 *
 * Usage: tier_in_lab.ts KUBE_BIN TOOLS_BIN ROUNDS REMOTE_RTT_MS (the relay's round trip, ms).
 * K8STUN_BENCH_DENO_FLAGS adds flags to k8stun's `deno run`; K8STUN_BENCH_PROFILE=FILE profiles
 * k8stun's main thread during its first 20 MiB echo (tier_profile.ts).
 */
import { startControlPlane } from "../lab/kube/control_plane.ts";
import { createPod, must, startPodServer } from "../lab/kube/fixtures.ts";
import { startProfile, summarize } from "./tier_profile.ts";
import { processCpuSeconds, taskName, threadCpuSeconds } from "./cpu_time.ts";
import { type DelayProxy, startDelayProxy } from "./delay_proxy.ts";

const [kubeBin, toolsBin, roundsArg, remoteRttArg] = Deno.args;
const rounds = Number(roundsArg ?? 3);
/** The round trip put between the remote rows' clients and the API server, ms. */
const remoteRttMs = Number(remoteRttArg ?? 10);
const here = (file: string) => new URL(file, import.meta.url).pathname;
const BULK = 20 * 1024 * 1024;
const MEDIUM = 1024 * 1024;

/** A child whose stdout is collected; resolves the first match of `pattern`. */
function start(command: string, args: string[], env: Record<string, string> = {}) {
  const child = new Deno.Command(command, { args, env, stdout: "piped", stderr: "piped" }).spawn();
  let output = "";
  const decoder = new TextDecoder();
  const collect = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream) output += decoder.decode(chunk, { stream: true });
  };
  collect(child.stdout).catch(() => {});
  collect(child.stderr).catch(() => {});
  return {
    child,
    get output() {
      return output;
    },
    async wait(pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        const match = output.match(pattern);
        if (match) return match;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`timed out waiting for ${pattern}:\n${output.slice(-3000)}`);
    },
  };
}

/** CPU seconds so far of the control plane's processes that carry port-forward bytes. */
async function serverSideCpu(): Promise<number> {
  let total = 0;
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const name = await taskName(`/proc/${entry.name}`);
      if (name === "kube-apiserver" || name === "kwok") {
        total += await processCpuSeconds(Number(entry.name));
      }
    } catch {
      // the process ended
    }
  }
  return total;
}

async function client(host: string, port: number, ...args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", here("./echo_client.ts"), host, String(port), ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim();
  if (!out.success) {
    throw new Error(
      `echo client ${host}:${port} ${args.join(" ")} failed: ${
        new TextDecoder().decode(out.stderr)
      }`,
    );
  }
  return JSON.parse(text.split("\n").at(-1)!);
}

interface PathFigures {
  bulkMbps: number;
  mediumMbps: number;
  connectMs: number;
  /** CPU seconds of the path's process during the 20 MiB echo, and per thread name. */
  bulkCpu: number;
  /** CPU seconds kube-apiserver and kwok (the kubelet) used during the same echo. */
  serverCpu: number;
  bulkThreads: Record<string, number>;
}

async function measure(
  pid: number,
  host: string,
  port: number,
  inspector?: string,
): Promise<PathFigures> {
  const before = await threadCpuSeconds(pid);
  const serverBefore = await serverSideCpu();
  const profiling = inspector ? await startProfile(inspector) : undefined;
  const bulk = await client(host, port, "bulk", String(BULK));
  if (profiling) {
    const profile = await profiling.stop();
    await Deno.writeTextFile(profileFile!, JSON.stringify(profile));
    console.error(`k8stun main thread, 20 MiB echo, self time:\n${summarize(profile)}`);
  }
  const after = await threadCpuSeconds(pid);
  const serverCpu = await serverSideCpu() - serverBefore;
  const threads: Record<string, number> = {};
  for (const [name, seconds] of after) threads[name] = seconds - (before.get(name) ?? 0);
  const medium = await client(host, port, "bulk", String(MEDIUM), "5");
  const connect = await client(host, port, "connect", "20");
  return {
    bulkMbps: bulk.mbps,
    mediumMbps: medium.mbps,
    connectMs: connect.p50,
    bulkCpu: Object.values(threads).reduce((a, b) => a + b, 0),
    serverCpu,
    bulkThreads: threads,
  };
}

/** New connections, the 20 MiB and the 1 MiB echo through a distant API server. */
async function measureRemote(host: string, port: number) {
  const bulk = await client(host, port, "bulk", String(BULK));
  const medium = await client(host, port, "bulk", String(MEDIUM), "5");
  const connect = await client(host, port, "connect", "20");
  return { bulkMbps: bulk.mbps, mediumMbps: medium.mbps, connectMs: connect.p50 };
}

/** A copy of `kubeconfigPath` whose server is `port` on 127.0.0.1 (the certificate's name). */
async function kubeconfigVia(kubeconfigPath: string, port: number): Promise<string> {
  const text = await Deno.readTextFile(kubeconfigPath);
  const path = kubeconfigPath.replace(/kubeconfig$/, "kubeconfig-remote");
  await Deno.writeTextFile(
    path,
    text.replace(/server: https:\/\/127\.0\.0\.1:\d+/, `server: https://127.0.0.1:${port}`),
  );
  return path;
}

const profileFile = Deno.env.get("K8STUN_BENCH_PROFILE");
const cp = await startControlPlane({ bin: kubeBin });
const server = startPodServer("echo-0", "echo");
const processes: Deno.ChildProcess[] = [];
let delay: DelayProxy | undefined;
try {
  await must(cp, "POST", "/api/v1/namespaces", {
    apiVersion: "v1",
    kind: "Namespace",
    metadata: { name: "bench" },
  });
  await createPod(cp, "bench", "echo-0", { app: "echo" }, {
    name: "echo",
    containerPort: 7007,
  }, server);
  await must(cp, "POST", "/api/v1/namespaces/bench/services", {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name: "echo", namespace: "bench" },
    spec: { selector: { app: "echo" }, ports: [{ name: "echo", port: 7, targetPort: "echo" }] },
  });
  const k8stun = start(Deno.execPath(), [
    "run",
    ...(Deno.env.get("K8STUN_BENCH_DENO_FLAGS")?.split(" ").filter(Boolean) ?? []),
    ...(profileFile ? ["--inspect=127.0.0.1:9229"] : []),
    "-A",
    here("../../cli/main.ts"),
    "run",
    "--kubeconfig",
    cp.kubeconfigPath,
    "-n",
    "bench",
    "--dns-mode",
    "forward",
  ]);
  processes.push(k8stun.child);
  await k8stun.wait(/is ready/, 60_000);
  const inspector = profileFile
    ? (await k8stun.wait(/Debugger listening on (ws:\S+)/, 1_000))[1]
    : undefined;
  /**
   * Starts a local port-forward to the echo pod, client-go's (`env` picks its transports) or
   * k8stun's dialer alone (`dialer` gives dialer_forward.ts's transport and mode); resolves its
   * process and local port.
   */
  const forwarder = async (
    kubeconfig: string,
    dialer?: string[],
    env: Record<string, string> = {},
  ) => {
    const target = [kubeconfig, "bench", "echo-0", "7007"];
    const forward = dialer
      ? start(Deno.execPath(), ["run", "-A", here("./dialer_forward.ts"), ...target, ...dialer])
      : start(`${toolsBin}/portforward-client`, target, env);
    processes.push(forward.child);
    return { pid: forward.child.pid, port: Number((await forward.wait(/READY (\d+)/, 30_000))[1]) };
  };
  const clientGo = await forwarder(cp.kubeconfigPath);
  const clientGoSpdy = await forwarder(cp.kubeconfigPath, undefined, {
    PORTFORWARD_SPDY_ONLY: "1",
  });
  const direct = await forwarder(cp.kubeconfigPath, ["direct"]);
  delay = startDelayProxy(Number(new URL(cp.server).port), remoteRttMs / 2);
  const remoteKubeconfig = await kubeconfigVia(cp.kubeconfigPath, delay.port);
  const k8stunRemote = await forwarder(remoteKubeconfig, ["tunnel", "early"]);
  const clientGoRemote = await forwarder(remoteKubeconfig);
  // EndpointSlices come from the real controller a moment after the pod turns ready.
  for (let i = 0;; i++) {
    try {
      await client("echo.bench", 7, "connect", "3");
      break;
    } catch (error) {
      if (i === 50) throw error;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  // Connections up, JIT warm.
  for (const { port } of [clientGo, clientGoSpdy, direct, k8stunRemote, clientGoRemote]) {
    await client("127.0.0.1", port, "connect", "3");
  }
  const results: (
    & Record<"k8stun" | "clientGo" | "direct" | "clientGoSpdy", PathFigures>
    & Record<"k8stunRemote" | "clientGoRemote", Awaited<ReturnType<typeof measureRemote>>>
  )[] = [];
  for (let round = 0; round < rounds; round++) {
    results.push({
      k8stun: await measure(
        k8stun.child.pid,
        "echo.bench",
        7,
        round === 0 ? inspector : undefined,
      ),
      clientGo: await measure(clientGo.pid, "127.0.0.1", clientGo.port),
      direct: await measure(direct.pid, "127.0.0.1", direct.port),
      clientGoSpdy: await measure(clientGoSpdy.pid, "127.0.0.1", clientGoSpdy.port),
      k8stunRemote: await measureRemote("127.0.0.1", k8stunRemote.port),
      clientGoRemote: await measureRemote("127.0.0.1", clientGoRemote.port),
    });
  }
  console.log(JSON.stringify(results));
} finally {
  for (const child of processes) {
    try {
      child.kill("SIGTERM");
    } catch {
      // gone
    }
    await child.status;
  }
  server.close();
  delay?.close();
  await cp.stop();
}
