/**
 * TUN data plane through the direct dialer, in a lab namespace, against the kernel's own loopback
 * measured in the same run: upload/download throughput at MTU 1500 and 65520, new connections per
 * second (one at a time and 16 at once), request/response latency p50/p99, memory per idle
 * connection at 10,000 connections. Each figure is the median of three alternating rounds, for
 * both Linux backends: with offload (virtio headers, TSO) and without (checksums in TypeScript,
 * MTU-sized packets: the path macOS takes); then the same client against tun2socks in the SOCKS5
 * topology (tun_socks.ts). K8STUN_BENCH_AREA=socks runs only the tun2socks comparison.
 */
import { Lab, labUnavailable } from "../lab/lab.ts";
import type { BenchResult } from "./types.ts";
import { compareWithTun2socks } from "./tun_socks.ts";
import { medians } from "./median.ts";
import type { TunFigures } from "./types.ts";

const here = (file: string) => new URL(file, import.meta.url).pathname;

async function measure(lab: Lab, host: string, bytes: number): Promise<TunFigures> {
  const out = await lab.run(Deno.execPath(), [
    "run",
    "-A",
    here("./tun_client.ts"),
    host,
    String(bytes),
  ], {
    timeoutMs: 180_000,
  });
  if (out.code !== 0) {
    throw new Error(`client failed (exit ${out.code}): ${out.stderr}${out.stdout}`);
  }
  return JSON.parse(out.stdout.trim().split("\n").at(-1)!);
}

const ROUNDS = 3;

/** RSS of a process, in bytes. */
async function rss(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

/**
 * Opens `count` connections through the TUN to a server that holds them without reading, and
 * returns the data plane's RSS growth per connection (the stack's state, the relay, the dialed
 * socket: everything k8stun keeps for an idle connection).
 */
async function idleMemory(lab: Lab, planePid: number, count: number): Promise<number> {
  const peers = here("./idle_peers.ts");
  const server = lab.spawn(Deno.execPath(), ["run", "-A", peers, "server", "9010"]);
  await server.waitForOutput(/READY/, 30_000);
  const before = await rss(planePid);
  const client = lab.spawn(Deno.execPath(), [
    "run",
    "-A",
    peers,
    "client",
    "198.18.0.2",
    "9010",
    String(count),
  ]);
  await client.waitForOutput(/READY/, 120_000);
  await new Promise((r) => setTimeout(r, 2000)); // let the plane settle (GC, relay start)
  const after = await rss(planePid);
  client.signal("SIGKILL");
  server.signal("SIGKILL");
  return (after - before) / count;
}

export async function run(): Promise<BenchResult[]> {
  const why = labUnavailable();
  if (why) return [{ name: "tun", value: 0, unit: "skipped", note: why }];
  const bytes = Number(Deno.env.get("K8STUN_BENCH_BYTES") ?? 1_000_000_000); // 1 GB: seconds, not a slow start
  const socksBytes = Number(Deno.env.get("K8STUN_BENCH_SOCKS_BYTES") ?? 300_000_000);
  if (Deno.env.get("K8STUN_BENCH_AREA") === "socks") return await compareWithTun2socks(socksBytes);
  const results: BenchResult[] = [];
  for (const backend of ["on", "off"]) {
    for (const mtu of [1500, 65520]) {
      const label = `offload ${backend}, MTU ${mtu}`;
      await using lab = await Lab.create();
      // The bench opens some 20,000 connections a minute from this namespace. Our stack does not
      // negotiate timestamps (docs/tcp.md §2.4), so the client's TIME-WAIT ports toward the VIP are
      // not reused, and with the default 28,000 ephemeral ports its connect() slows down as they
      // fill up: a client artifact, not a k8stun cost. A wider range keeps them mostly free (above
      // the fixture's server ports, 9000-9010, which an outgoing connection must not take).
      await lab.sh("sysctl -qw net.ipv4.ip_local_port_range='10000 65535'");
      const plane = lab.spawn(Deno.execPath(), [
        "run",
        "-A",
        here("../lab/tun_plane.ts"),
        String(mtu),
        String(bytes),
      ], { env: { K8STUN_LAB_OFFLOAD: backend } });
      await plane.waitForOutput(/READY/, 30_000);
      // Three rounds, loopback and TUN alternating, and the median of each figure: a virtual
      // machine's bursts of noise then hit both sides alike and do not make a figure.
      const rounds: { loopback: TunFigures; tun: TunFigures }[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        rounds.push({
          loopback: await measure(lab, "127.0.0.1", bytes),
          tun: await measure(lab, "198.18.0.2", bytes),
        });
      }
      const loopback = medians(rounds.map((r) => r.loopback));
      const tun = medians(rounds.map((r) => r.tun));
      const mbit = (mbps: number) => mbps * 8;
      results.push(
        {
          name: `upload app→pod, ${label}`,
          value: mbit(tun.up),
          unit: "Mbit/s",
          baseline: { name: "kernel loopback", value: mbit(loopback.up) },
        },
        {
          name: `download pod→app, ${label}`,
          value: mbit(tun.down),
          unit: "Mbit/s",
          baseline: { name: "kernel loopback", value: mbit(loopback.down) },
        },
      );
      if (mtu === 1500) {
        const perConnection = await idleMemory(lab, plane.pid, 10_000);
        results.push(
          {
            name: `memory per idle connection (10,000 open), offload ${backend}`,
            value: perConnection / 1024,
            unit: "KiB",
            note: "RSS growth of the k8stun data plane process divided by the connections",
          },
          {
            name: `new connections per second, one at a time, offload ${backend}`,
            value: tun.cps,
            unit: "conn/s",
            baseline: { name: "kernel loopback", value: loopback.cps },
          },
          {
            name: `new connections per second, 16 at once, offload ${backend}`,
            value: tun.cpsParallel,
            unit: "conn/s",
            baseline: { name: "kernel loopback", value: loopback.cpsParallel },
          },
          {
            name: `request/response latency p50, offload ${backend}`,
            value: tun.p50,
            unit: "µs",
            baseline: { name: "kernel loopback", value: loopback.p50 },
          },
          {
            name: `request/response latency p99, offload ${backend}`,
            value: tun.p99,
            unit: "µs",
            baseline: { name: "kernel loopback", value: loopback.p99 },
          },
        );
      }
    }
  }
  results.push(...await compareWithTun2socks(socksBytes));
  return results;
}
