/**
 * Benchmark client run inside the lab: measures against a host (the VIP or 127.0.0.1) and prints
 * one JSON line: upload and download MB/s, connections/s one at a time and PARALLEL (16) at once,
 * request/response p50/p99 µs. `tun_client.ts HOST BYTES [PARALLEL] [bulk|connections|latency]`
 * measures only the transfers, only the new-connection rates or only the latency. With the
 * connection rates it prints the CPU seconds it used itself to open those connections.
 */
import { processCpuSeconds } from "./cpu_time.ts";

const host = Deno.args[0];
const bytes = Number(Deno.args[1] ?? 100_000_000);
const parallel = Number(Deno.args[2] ?? 16);
const phases = Deno.args[3] ?? "all";

async function upload(): Promise<number> {
  const conn = await Deno.connect({ hostname: host, port: 9000 });
  const chunk = new Uint8Array(256 * 1024);
  const start = performance.now();
  let left = bytes;
  while (left > 0) left -= await conn.write(chunk.subarray(0, Math.min(chunk.length, left)));
  await conn.closeWrite();
  const buffer = new Uint8Array(16);
  await conn.read(buffer).catch(() => null);
  conn.close();
  return bytes / ((performance.now() - start) / 1000) / 1e6;
}

async function download(): Promise<number> {
  const conn = await Deno.connect({ hostname: host, port: 9001 });
  const buffer = new Uint8Array(256 * 1024);
  const start = performance.now();
  let got = 0;
  while (true) {
    const n = await conn.read(buffer);
    if (n === null) break;
    got += n;
  }
  conn.close();
  return got / ((performance.now() - start) / 1000) / 1e6;
}

/** New connections per second, `parallel` connecting at once (each connects, then closes). */
async function connectionsPerSecond(total: number, parallel: number): Promise<number> {
  let started = 0;
  const start = performance.now();
  await Promise.all(Array.from({ length: parallel }, async () => {
    while (started++ < total) (await Deno.connect({ hostname: host, port: 9002 })).close();
  }));
  return total / ((performance.now() - start) / 1000);
}

async function latency(): Promise<[number, number]> {
  const conn = await Deno.connect({ hostname: host, port: 9002 });
  conn.setNoDelay(true);
  const ping = new Uint8Array(64);
  const buffer = new Uint8Array(64);
  const samples: number[] = [];
  for (let i = 0; i < 2000; i++) {
    const start = performance.now();
    await conn.write(ping);
    let got = 0;
    while (got < 64) got += (await conn.read(buffer.subarray(got))) ?? 64;
    if (i >= 100) samples.push((performance.now() - start) * 1000);
  }
  conn.close();
  samples.sort((a, b) => a - b);
  return [samples[Math.floor(samples.length / 2)], samples[Math.floor(samples.length * 0.99)]];
}

const transfers = phases === "all" || phases === "bulk";
const connections = phases === "all" || phases === "connections";
const latencies = phases === "all" || phases === "latency";
const up = transfers ? await upload() : 0;
const down = transfers ? await download() : 0;
const cpuBefore = await processCpuSeconds(Deno.pid);
// Warm-up: JIT and first-use allocations on both ends.
if (connections) await connectionsPerSecond(200, 1);
const cps = connections ? await connectionsPerSecond(1000, 1) : 0;
const cpsParallel = connections ? await connectionsPerSecond(2000, parallel) : 0;
const connectionCpu = connections ? await processCpuSeconds(Deno.pid) - cpuBefore : 0;
const [p50, p99] = latencies ? await latency() : [0, 0];
console.log(JSON.stringify({ up, down, cps, cpsParallel, connectionCpu, p50, p99 }));
