/**
 * The API server going away and coming back, as the cluster view sees it: retries back off
 * instead of spinning, the outage is announced once each way, cached names keep answering, and
 * a server that accepts connections but never answers fails start-up in bounded time.
 */
import { ApiAccess } from "../../core/k8s/api_access.ts";
import { assert, assertEquals, assertMatch } from "../assert.ts";
import { Backoff } from "../../core/cluster/backoff.ts";
import { Reachability } from "../../core/cluster/reachability.ts";
import { ClusterAccessError, startClusterSync } from "../../core/cluster/sync.ts";
import { DEMO_FIXTURE, startSimCluster } from "../../sim/mod.ts";
import type { TelemetryEvent } from "../../core/telemetry.ts";
import { relayToApi } from "../lab/outage_relay.ts";

async function until(check: () => boolean, ms: number, what: string): Promise<number> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > ms) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return Date.now() - start;
}

/** The sim's kubeconfig, pointed at `port` on loopback instead. */
function accessVia(kubeconfig: string, simUrl: string, port: number): ApiAccess {
  const url = new URL(simUrl);
  return ApiAccess.fromText(kubeconfig.replaceAll(simUrl, `${url.protocol}//127.0.0.1:${port}`));
}

Deno.test("cluster backoff: 0.8 s doubling to 30 s, back to the start after a quiet spell", () => {
  let now = 0;
  const backoff = new Backoff({ jitter: 0, now: () => now });
  const delays = Array.from({ length: 8 }, () => backoff.next());
  assertEquals(delays, [800, 1600, 3200, 6400, 12800, 25600, 30000, 30000]);
  now += 121_000;
  assertEquals(backoff.next(), 800);
  const jittered = new Backoff({ jitter: 0.5, random: () => 0 });
  assertEquals(jittered.next(), 400);
});

Deno.test("cluster reachability: one change each way however many loops fail or recover", () => {
  let now = 1000;
  const reachability = new Reachability(() => now);
  const changes: string[] = [];
  reachability.onChange((c) => changes.push(`${c.state}${c.outageMs ? ` ${c.outageMs}` : ""}`));
  reachability.markSynced();
  for (const loop of ["services", "pods", "services", "pods"]) reachability.failed(loop, "down");
  assertEquals(reachability.state, "unreachable");
  assertEquals(reachability.errors(), ["services: down", "pods: down"]);
  now += 5000;
  reachability.succeeded("services");
  assertEquals(reachability.state, "unreachable", "one loop still failing");
  reachability.succeeded("pods");
  assertEquals(changes, ["synced", "unreachable", "synced 5000"]);
});

Deno.test({
  name:
    "cluster: a stopped API server is retried with backoff, announced once, cached names keep answering, and it recovers",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using sim = await startSimCluster({ fixture: DEMO_FIXTURE });
    await using relay = relayToApi(sim.url);
    const events: TelemetryEvent[] = [];
    const view = await startClusterSync({
      access: accessVia(sim.kubeconfig(), sim.url, relay.port),
      namespaces: ["demo"],
      telemetry: { emit: (event) => events.push(event) },
      probeIntervalMs: 500,
      backoff: { initialMs: 200, maxMs: 1000 },
    });
    try {
      await view.synced;
      assertEquals(view.state(), "synced");
      const changes: string[] = [];
      view.onStateChange((change) => changes.push(change.state));

      relay.setMode("refuse");
      await until(() => view.state() === "unreachable", 5000, "outage noticed");
      const restartsBefore = events.filter((e) => e.type === "watch_restart").length;
      await new Promise((r) => setTimeout(r, 3000));
      const restarts = events.filter((e) => e.type === "watch_restart").length - restartsBefore;
      // Four loops backing off 0.2 → 1 s retry at most ~6 times each in 3 s; without backoff
      // (a 0.1 s pause) it was ~30 each.
      assert(restarts <= 32, `${restarts} watch restarts in 3 s of outage`);
      assert(view.errors().length > 0);
      assertEquals(view.store.readyEndpoints("demo", "hello", 80).length, 2, "cached view serves");

      relay.setMode("forward");
      const back = await until(() => view.state() === "synced", 5000, "recovery").catch((e) => {
        throw new Error(`${e.message}: ${view.errors().join("; ")}`);
      });
      assert(back <= 5000);
      assertEquals(changes, ["unreachable", "synced"], "announced once each way");
      const announced = events.filter((e) => e.type === "cluster_state").map((e) =>
        e.type === "cluster_state" ? e.state : ""
      );
      assertEquals(announced.slice(-2), ["unreachable", "synced"]);
      sim.setPodReady("demo", "hello-7d9f-x2k4p", false);
      await until(
        () => view.store.readyEndpoints("demo", "hello", 80).length === 1,
        5000,
        "watches resumed after the outage",
      );
    } finally {
      view.close();
    }
  },
});

Deno.test({
  name: "cluster: a black-holed API server connection is noticed by the liveness probe",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using sim = await startSimCluster({ fixture: DEMO_FIXTURE });
    await using relay = relayToApi(sim.url);
    const view = await startClusterSync({
      access: accessVia(sim.kubeconfig(), sim.url, relay.port),
      namespaces: ["demo"],
      probeIntervalMs: 300,
      requestTimeoutMs: 1000,
      backoff: { initialMs: 100, maxMs: 500 },
    });
    try {
      await view.synced;
      relay.setMode("blackhole");
      await until(() => view.state() === "unreachable", 5000, "black hole noticed");
      relay.setMode("forward");
      await until(() => view.state() === "synced" && view.healthy(), 8000, "recovery");
    } finally {
      view.close();
    }
  },
});

Deno.test({
  name:
    "cluster: an API server that accepts connections but never answers fails start-up within the sync timeout, naming the server",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using sim = await startSimCluster({ fixture: DEMO_FIXTURE });
    await using relay = relayToApi(sim.url);
    relay.setMode("blackhole");
    const started = Date.now();
    const error = await startClusterSync({
      access: accessVia(sim.kubeconfig(), sim.url, relay.port),
      namespaces: ["demo"],
      initialListTimeoutMs: 1000,
    }).then((view) => view.synced).then(() => undefined, (e) => e);
    assert(error instanceof ClusterAccessError, String(error));
    assertMatch(error.message, new RegExp(`127\\.0\\.0\\.1:${relay.port}`));
    assert(Date.now() - started < 10_000);
  },
});
