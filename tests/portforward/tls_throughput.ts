/**
 * Benchmark, not a test: a 64 MiB echo through one SPDY port-forward session over TLS to the
 * simulator, dialled with Deno's TLS (the dialer's path) and with `node:tls` (client-node's agent,
 * the path before), in alternating rounds. Prints MiB/s per round and the medians.
 *
 *     tools/deno run --allow-all tests/portforward/tls_throughput.ts [rounds]
 */
import { KubeConfig } from "@kubernetes/client-node";
// @ts-types="@types/ws"
import type WebSocket from "ws";
import { DEMO_FIXTURE, startSimCluster } from "../../sim/mod.ts";
import { PortForwardSession } from "../../plugins/portforward/forward_session.ts";
import { apiServerSocketOptions } from "../../plugins/portforward/connection_options.ts";

const MiB = 1024 * 1024;
const TOTAL = 64 * MiB;
const rounds = Number(Deno.args[0] ?? 3);

await using sim = await startSimCluster({ fixture: DEMO_FIXTURE });
const kubeConfig = new KubeConfig();
kubeConfig.loadFromString(sim.kubeconfig());
const url = `${
  sim.url.replace(/^http/, "ws")
}/api/v1/namespaces/demo/pods/echo-5c6b-m9t2z/portforward`;

const paths: Record<string, () => Promise<WebSocket.ClientOptions>> = {
  "deno tls": () => apiServerSocketOptions(kubeConfig, 10_000),
  "node:tls": async () => {
    const options = { handshakeTimeout: 10_000 };
    await kubeConfig.applyToHTTPSOptions(options);
    return options;
  },
};

async function echoMiBps(options: WebSocket.ClientOptions): Promise<number> {
  const session = await PortForwardSession.open(url, options);
  try {
    const duplex = await session.openStream(7007, new AbortController().signal);
    const chunk = new Uint8Array(MiB).fill(7);
    const started = performance.now();
    const writer = duplex.writable.getWriter();
    const writing = (async () => {
      for (let sent = 0; sent < TOTAL; sent += MiB) await writer.write(chunk);
      await writer.close();
    })();
    let received = 0;
    for await (const bytes of duplex.readable) received += bytes.length;
    await writing;
    if (received !== TOTAL) throw new Error(`echoed ${received} of ${TOTAL} bytes`);
    return (TOTAL / MiB) / ((performance.now() - started) / 1000);
  } finally {
    session.close();
  }
}

const results: Record<string, number[]> = {};
for (let round = 0; round < rounds; round++) {
  for (const [name, options] of Object.entries(paths)) {
    const mibps = await echoMiBps(await options());
    (results[name] ??= []).push(mibps);
    console.log(`round ${round + 1} ${name}: ${mibps.toFixed(1)} MiB/s`);
  }
}
for (const [name, values] of Object.entries(results)) {
  const sorted = [...values].sort((a, b) => a - b);
  console.log(`${name}: median ${sorted[Math.floor(sorted.length / 2)].toFixed(1)} MiB/s`);
}
