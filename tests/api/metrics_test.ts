/**
 * `k8stun_connections_total{result}`: a connection the other end reset (a server that closes with
 * bytes unread, as iperf3 does with its data connections) is counted as `reset`, apart from
 * `error` (failures of k8stun's own path) and `closed` (both FINs). And the TUN's dropped packets.
 */
import { assertEquals } from "../assert.ts";
import { Metrics } from "../../core/api/metrics.ts";
import type { ConnectionInfo } from "../../core/telemetry.ts";

const connection = (id: number): ConnectionInfo => ({
  id,
  vip: "198.18.0.2",
  createdAt: new Date(0),
  srcIp: "198.18.0.1",
  srcPort: 40000 + id,
  dstPort: 5201,
});

Deno.test("metrics: a reset by the other end is counted as reset, not as an error", () => {
  const metrics = new Metrics();
  for (let id = 1; id <= 4; id++) {
    metrics.emit({ type: "connection_opened", connection: connection(id) });
  }
  metrics.emit({ type: "connection_closed", connection: connection(1) });
  metrics.emit({
    type: "connection_closed",
    connection: connection(2),
    error: "Connection reset by peer (os error 104)",
    reset: true,
  });
  metrics.emit({
    type: "connection_closed",
    connection: connection(3),
    error: "Broken pipe (os error 32)",
    reset: true,
  });
  metrics.emit({ type: "connection_closed", connection: connection(4), error: "dial timed out" });
  const totals = Object.fromEntries(
    [...metrics.render().matchAll(/^k8stun_connections_total\{result="(\w+)"\} (\d+)$/gm)].map((
      m,
    ) => [m[1], Number(m[2])]),
  );
  assertEquals(totals, { opened: 4, closed: 1, reset: 2, error: 1 });
});

Deno.test("metrics: the TUN's dropped packets are a counter by reason, and absent without a TUN", () => {
  const drops = { foreign: 2, datagram_overload: 344 };
  const text = new Metrics({ vipsByType: () => ({}), tunDrops: () => drops }).render();
  assertEquals(
    [...text.matchAll(/^k8stun_tun_packets_dropped_total\{reason="(\w+)"\} (\d+)$/gm)]
      .map((m) => [m[1], Number(m[2])]),
    [["foreign", 2], ["datagram_overload", 344]],
  );
  assertEquals(text.includes("# TYPE k8stun_tun_packets_dropped_total counter"), true);
  const proxy = new Metrics({ vipsByType: () => ({}) }).render();
  assertEquals(proxy.includes("k8stun_tun_packets_dropped_total"), false);
});
