/**
 * Port-forward through the simulated cluster: connection setup time (dial → first byte from the
 * pod) and throughput with the SPDY session dialer (tunnelled over a WebSocket, and over a direct
 * `Upgrade: SPDY/3.1`), against the one-WebSocket-per-connection v4 transport (what the Rust
 * k8stun does) measured in the same run.
 */
import { ApiAccess } from "../../core/k8s/api_access.ts";
import { DEMO_FIXTURE, startSimCluster } from "../../sim/mod.ts";
import {
  createPortForwardDialer,
  type PortForwardTransport,
} from "../../plugins/portforward/mod.ts";
import type { Dialer } from "../../mod.ts";
import type { BenchResult } from "./types.ts";
import { startDelayProxy } from "./delay_proxy.ts";

/** Emulated round trip to the API server for the second pair of setup figures. */
const EMULATED_RTT_MS = 10;

/** Dial options as the TUN front passes them: the stream is taken before the kubelet's verdict. */
const options = () => ({
  signal: new AbortController().signal,
  flow: { port: 1, protocol: "tcp" as const, front: "tun" as const },
  early: true,
});

async function setup(dialer: Dialer, n: number): Promise<{ p50: number; p99: number }> {
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const start = performance.now();
    const duplex = await dialer.dial(
      { kind: "pod", namespace: "demo", name: "db-0", port: 5432 },
      options(),
    );
    const reader = duplex.readable.getReader();
    await reader.read(); // the pod's banner: the connection works end to end
    samples.push(performance.now() - start);
    duplex.abort();
  }
  samples.sort((a, b) => a - b);
  return { p50: samples[Math.floor(n / 2)], p99: samples[Math.floor(n * 0.99)] };
}

async function throughput(dialer: Dialer, bytes: number): Promise<number> {
  const duplex = await dialer.dial({
    kind: "pod",
    namespace: "demo",
    name: "echo-5c6b-m9t2z",
    port: 7007,
  }, options());
  const chunk = new Uint8Array(64 * 1024);
  const start = performance.now();
  const writer = duplex.writable.getWriter();
  const sending = (async () => {
    for (let sent = 0; sent < bytes; sent += chunk.length) await writer.write(chunk);
    await writer.close();
  })();
  let received = 0;
  const reader = duplex.readable.getReader();
  while (received < bytes) {
    const { value, done } = await reader.read();
    if (done) break;
    received += value.length;
  }
  await sending;
  duplex.abort();
  return received * 8 / ((performance.now() - start) / 1000) / 1e6;
}

export async function run(): Promise<BenchResult[]> {
  const spdySim = await startSimCluster({ fixture: DEMO_FIXTURE });
  const v4Sim = await startSimCluster({ fixture: DEMO_FIXTURE, tunnel: false });
  const spdyFar = startDelayProxy(Number(new URL(spdySim.url).port), EMULATED_RTT_MS / 2);
  const v4Far = startDelayProxy(Number(new URL(v4Sim.url).port), EMULATED_RTT_MS / 2);
  const dialerFor = (
    kubeconfig: string,
    transports: PortForwardTransport[],
    port?: number,
    v4RefusalGraceMs?: number,
  ) => {
    const kc = ApiAccess.fromText(
      port ? kubeconfig.replace(/(server: \S+:)\d+/, `$1${port}`) : kubeconfig,
    );
    return createPortForwardDialer({ access: kc, transports, v4RefusalGraceMs });
  };
  // The baseline hands the connection over as soon as the socket is up, as kubectl and the Rust
  // k8stun do (no wait for a refusal).
  const spdy = dialerFor(spdySim.kubeconfig(), ["tunnel"]);
  const direct = dialerFor(v4Sim.kubeconfig(), ["direct"]);
  const v4 = dialerFor(v4Sim.kubeconfig(), ["v4"], undefined, 0);
  const spdyRemote = dialerFor(spdySim.kubeconfig(), ["tunnel"], spdyFar.port);
  const v4Remote = dialerFor(v4Sim.kubeconfig(), ["v4"], v4Far.port, 0);
  const all = [spdy, direct, v4, spdyRemote, v4Remote];
  try {
    for (const d of all) await setup(d, 3); // sessions up, JIT warm
    const s = await setup(spdy, 100);
    const d = await setup(direct, 100);
    const b = await setup(v4, 100);
    const sr = await setup(spdyRemote, 30);
    const br = await setup(v4Remote, 30);
    const bytes = 50 * 1024 * 1024;
    const ts = await throughput(spdy, bytes);
    const td = await throughput(direct, bytes);
    const tb = await throughput(v4, bytes);
    const baseline = "one v4 WebSocket per connection";
    const remote = `, ${EMULATED_RTT_MS} ms RTT`;
    return [
      {
        name: "port-forward setup p50 (dial → first byte), SPDY session",
        value: s.p50,
        unit: "ms",
        baseline: { name: baseline, value: b.p50 },
      },
      {
        name: "port-forward setup p50, direct SPDY/3.1 upgrade session",
        value: d.p50,
        unit: "ms",
        baseline: { name: baseline, value: b.p50 },
      },
      {
        name: "port-forward setup p99, SPDY session",
        value: s.p99,
        unit: "ms",
        baseline: { name: baseline, value: b.p99 },
      },
      {
        name: `port-forward setup p50${remote}, SPDY session`,
        value: sr.p50,
        unit: "ms",
        baseline: { name: baseline, value: br.p50 },
      },
      {
        name: `port-forward setup p99${remote}, SPDY session`,
        value: sr.p99,
        unit: "ms",
        baseline: { name: baseline, value: br.p99 },
      },
      {
        name: "port-forward echo throughput, SPDY session",
        value: ts,
        unit: "Mbit/s",
        baseline: { name: "v4 WebSocket", value: tb },
      },
      {
        name: "port-forward echo throughput, direct SPDY/3.1 upgrade session",
        value: td,
        unit: "Mbit/s",
        baseline: { name: "v4 WebSocket", value: tb },
      },
    ];
  } finally {
    for (const dialer of all) await dialer.close?.();
    spdyFar.close();
    v4Far.close();
    await spdySim.close();
    await v4Sim.close();
  }
}
