/**
 * SOCKS5 proxy with the direct dialer: upload throughput and connections per second, against
 * direct loopback connections to the same server in the same run.
 */
import { ClusterStore } from "../../core/cluster/store.ts";
import { BufferedConn } from "../../core/stream/buffered_conn.ts";
import { startProxyFront } from "../../cli/proxy_front.ts";
import { createDirectDialer } from "../../plugins/direct/mod.ts";
import type { BenchResult } from "./types.ts";

const BYTES = Number(Deno.env.get("K8STUN_BENCH_BYTES") ?? 100_000_000);

async function socksConnect(proxyPort: number, port: number): Promise<Deno.TcpConn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxyPort });
  const reader = new BufferedConn(conn, Date.now() + 10_000);
  await conn.write(new Uint8Array([5, 1, 0]));
  await reader.readExactly(2);
  await conn.write(new Uint8Array([5, 1, 0, 1, 127, 0, 0, 1, port >> 8, port & 0xff]));
  const reply = await reader.readExactly(10);
  if (reply[1] !== 0) throw new Error(`SOCKS reply ${reply[1]}`);
  return conn;
}

async function upload(conn: Deno.TcpConn): Promise<number> {
  const chunk = new Uint8Array(256 * 1024);
  const start = performance.now();
  let left = BYTES;
  while (left > 0) left -= await conn.write(chunk.subarray(0, Math.min(chunk.length, left)));
  await conn.closeWrite();
  await conn.read(new Uint8Array(1)).catch(() => null);
  conn.close();
  return BYTES * 8 / ((performance.now() - start) / 1000) / 1e6;
}

async function rate(connect: () => Promise<Deno.TcpConn>): Promise<number> {
  const n = 300;
  const start = performance.now();
  for (let i = 0; i < n; i++) (await connect()).close();
  return n / ((performance.now() - start) / 1000);
}

export async function run(): Promise<BenchResult[]> {
  const sink = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const sinkPort = (sink.addr as Deno.NetAddr).port;
  (async () => {
    for await (const conn of sink) {
      (async () => {
        const buffer = new Uint8Array(256 * 1024);
        while ((await conn.read(buffer).catch(() => null)) !== null) { /* sink */ }
        conn.close();
      })();
    }
  })().catch(() => {});
  const proxy = startProxyFront({
    store: new ClusterStore(),
    scope: {
      clusterDomain: "cluster.local",
      isNamespace: () => false,
      explicitNamespaces: new Set(),
    },
    resolvers: [],
    dialers: [createDirectDialer()],
    socks: { hostname: "127.0.0.1", port: 0 },
    allowLocal: true, // the sink is on loopback
  });
  try {
    const proxyPort = proxy.socksAddress!.port;
    const direct = () => Deno.connect({ hostname: "127.0.0.1", port: sinkPort });
    const viaSocks = () => socksConnect(proxyPort, sinkPort);
    const baselineUp = await upload(await direct());
    const socksUp = await upload(await viaSocks());
    const baselineRate = await rate(direct);
    const socksRate = await rate(viaSocks);
    return [
      {
        name: "SOCKS5 upload, direct dialer",
        value: socksUp,
        unit: "Mbit/s",
        baseline: { name: "direct loopback", value: baselineUp },
      },
      {
        name: "SOCKS5 connections per second",
        value: socksRate,
        unit: "conn/s",
        baseline: { name: "direct loopback", value: baselineRate },
      },
    ];
  } finally {
    await proxy.close();
    sink.close();
  }
}
