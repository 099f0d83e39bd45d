/**
 * k8stun's TUN path against tun2socks v2.7.0 in the same topology (issue 22): client → TUN →
 * userspace stack → SOCKS5 → a SOCKS5 server rewriting every destination to loopback → the
 * loopback servers. k8stun dials with `--socks-upstream` (tests/lab/tun_plane.ts with
 * K8STUN_LAB_SOCKS_UPSTREAM); tun2socks runs on a TUN of its own in the same lab. The servers and
 * the SOCKS server are separate processes shared by both, so each data plane's CPU is its own.
 * Medians of three alternating rounds: new connections per second one at a time and 8 at once,
 * request/response latency p50/p99, bulk at MTU 1500 and its CPU per gigabit, and the CPU per new
 * connection of each data plane and of the bench's own processes (what caps the rate ratio once
 * every core is busy).
 */
import { cachedBenchTools } from "../lab/kube/bench_tools.ts";
import { Lab } from "../lab/lab.ts";
import type { BenchResult } from "./types.ts";
import { median } from "./median.ts";
import { processCpuSeconds } from "./cpu_time.ts";
import type { TunFigures } from "./types.ts";

const here = (file: string) => new URL(file, import.meta.url).pathname;
const ROUNDS = 3;
/** Connections tun_client.ts opens in its connection phase (warm-up, one at a time, 8 at once). */
const CONNECTIONS_OPENED = 200 + 1000 + 2000;
/** The address tun2socks' TUN answers for (k8stun's is 198.18.0.2). */
const TUN2SOCKS_HOST = "198.20.0.2";

interface Figures extends TunFigures {
  /** CPU seconds of the data plane's process during the upload and download. */
  bulkCpu: number;
  /** CPU milliseconds of the data plane's process per new connection (the connection phases). */
  connectionCpuMs: number;
  /**
   * CPU milliseconds per new connection of the bench's own processes, the same for both data
   * planes: the client, the SOCKS5 server and the loopback servers.
   */
  benchCpuMs: number;
}

async function client(lab: Lab, host: string, bytes: number, phases: string) {
  const out = await lab.run(Deno.execPath(), [
    "run",
    "-A",
    here("./tun_client.ts"),
    host,
    String(bytes),
    "8",
    phases,
  ], { timeoutMs: 300_000 });
  if (out.code !== 0) throw new Error(`client failed (exit ${out.code}): ${out.stderr}`);
  return JSON.parse(out.stdout.trim().split("\n").at(-1)!);
}

/** CPU seconds so far of `pids` together. */
async function cpuOf(pids: number[]): Promise<number> {
  let total = 0;
  for (const pid of pids) total += await processCpuSeconds(pid);
  return total;
}

/**
 * The figures of the data plane `pid` (its TUN answers for `host`); `shared` are the bench's own
 * long-lived processes, whose CPU during the connection phases is counted too.
 */
async function measure(
  lab: Lab,
  pid: number,
  shared: number[],
  host: string,
  bytes: number,
): Promise<Figures> {
  const before = await processCpuSeconds(pid);
  const bulk = await client(lab, host, bytes, "bulk");
  const bulkCpu = await processCpuSeconds(pid) - before;
  const beforeConnections = await processCpuSeconds(pid);
  const sharedBefore = await cpuOf(shared);
  const connections = await client(lab, host, bytes, "connections");
  const connectionCpuMs = (await processCpuSeconds(pid) - beforeConnections) * 1000 /
    CONNECTIONS_OPENED;
  const benchCpuMs = (await cpuOf(shared) - sharedBefore + connections.connectionCpu) * 1000 /
    CONNECTIONS_OPENED;
  const latency = await client(lab, host, bytes, "latency");
  return {
    ...connections,
    p50: latency.p50,
    p99: latency.p99,
    up: bulk.up,
    down: bulk.down,
    bulkCpu,
    connectionCpuMs,
    benchCpuMs,
  };
}

/** The comparison's figures, or one skipped line when tun2socks is not built. */
export async function compareWithTun2socks(bytes: number): Promise<BenchResult[]> {
  const tools = await cachedBenchTools();
  if (!tools) {
    return [{
      name: "tun2socks comparison",
      value: 0,
      unit: "skipped",
      note: "tun2socks is not built (sh tests/lab/kube/build_bench_tools.sh)",
    }];
  }
  await using lab = await Lab.create();
  // As in tun.ts: a wide ephemeral range keeps TIME-WAIT ports from slowing the client's connect().
  await lab.sh("sysctl -qw net.ipv4.ip_local_port_range='10000 65535'");
  const socks = lab.spawn(`${tools}/socks-rewriter`, ["127.0.0.1:0"]);
  const socksPort = Number((await socks.waitForOutput(/READY (\d+)/, 10_000))[1]);
  const servers = lab.spawn(Deno.execPath(), [
    "run",
    "-A",
    here("./loopback_servers.ts"),
    `${bytes}`,
  ]);
  await servers.waitForOutput(/READY/, 30_000);
  const k8stun = lab.spawn(Deno.execPath(), [
    "run",
    "-A",
    here("../lab/tun_plane.ts"),
    "1500",
    String(bytes),
  ], {
    env: { K8STUN_LAB_SOCKS_UPSTREAM: `127.0.0.1:${socksPort}`, K8STUN_LAB_SERVERS: "off" },
  });
  await k8stun.waitForOutput(/READY/, 30_000);
  const tun2socks = lab.spawn(`${tools}/tun2socks`, [
    "--device",
    "tun://t2s0",
    "--proxy",
    `socks5://127.0.0.1:${socksPort}`,
    "--mtu",
    "1500",
    "--loglevel",
    "error",
  ]);
  for (let i = 0; (await lab.sh("ip link show t2s0")).code !== 0; i++) {
    if (i === 50) throw new Error(`tun2socks did not create its TUN:\n${tun2socks.output}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const up = await lab.sh("ip addr add 198.20.0.1/16 dev t2s0 && ip link set t2s0 up");
  if (up.code !== 0) throw new Error(`configuring tun2socks' TUN failed: ${up.stderr}`);
  const rounds: { k8stun: Figures; tun2socks: Figures }[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    rounds.push({
      k8stun: await measure(lab, k8stun.pid, [socks.pid, servers.pid], "198.18.0.2", bytes),
      tun2socks: await measure(lab, tun2socks.pid, [socks.pid, servers.pid], TUN2SOCKS_HOST, bytes),
    });
  }
  const k = (key: keyof Figures) => median(rounds.map((r) => r.k8stun[key]));
  const t = (key: keyof Figures) => median(rounds.map((r) => r.tun2socks[key]));
  const versus = (key: keyof Figures, scale = 1) => ({
    value: k(key) * scale,
    baseline: { name: "tun2socks v2.7.0", value: t(key) * scale },
  });
  // CPU per gigabit: the process's CPU over the upload and download, per gigabit moved.
  const gigabits = 2 * bytes * 8 / 1e9;
  // With eight at once every core is busy, and each connection costs its data plane's CPU plus
  // the bench's own: the rate ratio cannot much exceed the ratio of those sums.
  const bench = median(rounds.flatMap((r) => [r.k8stun.benchCpuMs, r.tun2socks.benchCpuMs]));
  const ceiling = (t("connectionCpuMs") + bench) / (k("connectionCpuMs") + bench);
  return [
    { name: "SOCKS topology: new connections/s, one at a time", unit: "conn/s", ...versus("cps") },
    {
      name: "SOCKS topology: new connections/s, 8 at once",
      unit: "conn/s",
      ...versus("cpsParallel"),
      note: `both cores busy: CPU per connection caps the ratio near ${ceiling.toFixed(2)}× ` +
        `(tun2socks + the bench's own processes) / (k8stun + the same)`,
    },
    { name: "SOCKS topology: request/response p50", unit: "µs", ...versus("p50") },
    { name: "SOCKS topology: request/response p99", unit: "µs", ...versus("p99") },
    { name: "SOCKS topology: upload app→pod, MTU 1500", unit: "Mbit/s", ...versus("up", 8) },
    { name: "SOCKS topology: download pod→app, MTU 1500", unit: "Mbit/s", ...versus("down", 8) },
    {
      name: "SOCKS topology: CPU per new connection (data plane process)",
      unit: "CPU ms",
      value: k("connectionCpuMs"),
      baseline: { name: "tun2socks v2.7.0", value: t("connectionCpuMs") },
    },
    {
      name: "SOCKS topology: CPU per new connection, the bench's own processes",
      unit: "CPU ms",
      value: k("benchCpuMs"),
      baseline: { name: "the same, tun2socks rounds", value: t("benchCpuMs") },
      note: "client, SOCKS5 server and loopback servers",
    },
    {
      name: "SOCKS topology: CPU per gigabit (upload + download)",
      unit: "CPU s/Gbit",
      value: k("bulkCpu") / gigabits,
      baseline: { name: "tun2socks v2.7.0", value: t("bulkCpu") / gigabits },
    },
  ];
}
