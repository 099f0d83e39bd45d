/**
 * DNS: queries per second and latency for cluster names (answered from the watch cache) and for
 * forwarded names (a local upstream on loopback), over UDP sockets, with 50 queries in flight.
 */
import dnsPacket from "dns-packet";
import { ClusterStore } from "../../core/cluster/store.ts";
import { ClusterAnswerer } from "../../core/dns/answer.ts";
import { DnsServer } from "../../core/dns/server.ts";
import { UpstreamResolver } from "../../core/dns/upstream.ts";
import { parseVipBase, VipPool } from "../../core/vip.ts";
import type { BenchResult } from "./types.ts";

function query(name: string, id: number): Uint8Array {
  return new Uint8Array(dnsPacket.encode({ type: "query", id, questions: [{ type: "A", name }] }));
}

async function load(
  port: number,
  name: string,
  total: number,
): Promise<{ qps: number; p50: number; p99: number }> {
  const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const sentAt = new Map<number, number>();
  const samples: number[] = [];
  const start = performance.now();
  let next = 0;
  const send = () => {
    const id = next++ & 0xffff;
    sentAt.set(id, performance.now());
    return socket.send(query(name, id), { transport: "udp", hostname: "127.0.0.1", port });
  };
  for (let i = 0; i < 50; i++) await send();
  while (samples.length < total) {
    const [reply] = await socket.receive();
    const id = (reply[0] << 8) | reply[1];
    const t = sentAt.get(id);
    if (t === undefined) continue;
    sentAt.delete(id);
    samples.push(performance.now() - t);
    if (next < total) await send();
  }
  const seconds = (performance.now() - start) / 1000;
  socket.close();
  samples.sort((a, b) => a - b);
  return {
    qps: total / seconds,
    p50: samples[Math.floor(total / 2)],
    p99: samples[Math.floor(total * 0.99)],
  };
}

export async function run(): Promise<BenchResult[]> {
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
  // A local upstream answering every query at once.
  const upstreamSocket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const upstreamPort = (upstreamSocket.addr as Deno.NetAddr).port;
  (async () => {
    for await (const [q, from] of upstreamSocket) {
      const reply = q.slice();
      reply[2] |= 0x80;
      upstreamSocket.send(reply, from).catch(() => {});
    }
  })().catch(() => {});
  const server = new DnsServer(answerer, new UpstreamResolver([`127.0.0.1:${upstreamPort}`]));
  const listener = server.listen("127.0.0.1", 0);
  const port = listener.addresses[0].port;
  try {
    const cluster = await load(port, "hello.demo", 20_000);
    const forwarded = await load(port, "example.test", 10_000);
    const direct = await load(upstreamPort, "example.test", 10_000);
    return [
      { name: "DNS cluster names", value: cluster.qps, unit: "queries/s" },
      {
        name: "DNS cluster names p50 / p99",
        value: cluster.p50,
        unit: "ms",
        note: `p99 ${cluster.p99.toFixed(2)} ms`,
      },
      {
        name: "DNS forwarded names",
        value: forwarded.qps,
        unit: "queries/s",
        baseline: { name: "upstream queried directly", value: direct.qps },
      },
      {
        name: "DNS forwarded names p99",
        value: forwarded.p99,
        unit: "ms",
        baseline: { name: "upstream queried directly", value: direct.p99 },
      },
    ];
  } finally {
    listener.close();
    upstreamSocket.close();
  }
}
