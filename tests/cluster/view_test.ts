/** The cluster view against the simulated cluster, the name grammar, and the VIP pool. */
import * as k8s from "@kubernetes/client-node";
import { assert, assertEquals, assertThrows } from "../assert.ts";
import { startClusterView } from "../../core/cluster/view.ts";
import { loadKubeConfig } from "../../core/kubeconfig.ts";
import { isPublicTld, type NameScope, parseClusterName } from "../../core/names.ts";
import { DEMO_FIXTURE, startSimCluster } from "../../core/sim/mod.ts";
import { parseVipBase, VipPool } from "../../core/vip.ts";
import { Router } from "../../core/router.ts";

async function until(check: () => boolean, ms = 3000): Promise<number> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > ms) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
  return Date.now() - start;
}

Deno.test({
  name:
    "cluster: endpoint changes reach new connections within 1 s; 410 and dropped watches recover with VIPs unchanged",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using sim = await startSimCluster({ fixture: DEMO_FIXTURE });
    const kc = new k8s.KubeConfig();
    kc.loadFromString(sim.kubeconfig());
    const view = await startClusterView({ kubeConfig: kc, namespaces: ["demo"] });
    try {
      await view.synced;
      const store = view.store;
      assertEquals(store.readyEndpoints("demo", "hello", 80).map((e) => e.port), [8080, 8080]);
      const vips = new VipPool({ network: parseVipBase(undefined), staleMs: 0 });
      const before = vips.allocate({ type: "service", namespace: "demo", name: "hello" });
      const router = new Router({ resolvers: [], dialers: [], cluster: store, vips });

      sim.setPodReady("demo", "hello-7d9f-x2k4p", false);
      const took = await until(() => store.readyEndpoints("demo", "hello", 80).length === 1);
      assert(took < 1000, `scale-down seen in ${took} ms`);
      const only = router.candidates({
        kind: "service",
        namespace: "demo",
        name: "hello",
        port: 80,
      });
      assertEquals(only.map((c) => c.kind === "pod" && c.name), ["hello-7d9f-q8w3n"]);
      sim.addPod("demo", {
        name: "hello-new",
        labels: { app: "hello" },
        ready: true,
        ports: [{ name: "http", containerPort: 8080, serve: "http" }],
      });
      sim.deletePod("demo", "hello-7d9f-q8w3n");
      await until(() => {
        const names = store.readyEndpoints("demo", "hello", 80).map((e) => e.pod?.name);
        return names.length === 1 && names[0] === "hello-new";
      });

      sim.compact();
      sim.dropWatches();
      sim.addService("demo", {
        name: "late",
        headless: false,
        selector: { app: "echo" },
        ports: [{ port: 1, targetPort: 7007, protocol: "TCP" }],
      });
      await until(() => store.hasService("demo", "late"), 5000);
      assertEquals(vips.allocate({ type: "service", namespace: "demo", name: "hello" }), before);
    } finally {
      view.close();
    }
  },
});

Deno.test({
  name: "cluster: wrong credentials fail with one line naming the server and context",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using sim = await startSimCluster({ fixture: DEMO_FIXTURE, token: "right" });
    const kc = new k8s.KubeConfig();
    kc.loadFromString(sim.kubeconfig().replace("token: right", "token: wrong"));
    const error = await startClusterView({ kubeConfig: kc, namespaces: ["demo"] }).catch((e) => e);
    assert(error instanceof Error);
    assertEquals(
      error.message,
      `the API server at ${sim.url} rejected the credentials of context "k8stun-sim" (401 Unauthorized)`,
    );
  },
});

Deno.test("kubeconfig: a missing file or context is one clear error naming them", () => {
  assertThrows(
    () => loadKubeConfig({ kubeconfig: "/nonexistent/kubeconfig" }),
    /no kubeconfig found at \/nonexistent\/kubeconfig — pass --kubeconfig FILE/,
  );
});

const scope: NameScope = {
  clusterDomain: "cluster.local",
  isNamespace: (ns) => ["demo", "dev", "default"].includes(ns),
  explicitNamespaces: new Set<string>(),
};

Deno.test("names: every Kubernetes name form parses (kubernetes.md §6.5, parity §4.7)", () => {
  const svc = { kind: "service", namespace: "demo", service: "hello" };
  assertEquals(parseClusterName("hello.demo", scope), svc);
  assertEquals(parseClusterName("HELLO.Demo.", scope), svc);
  assertEquals(parseClusterName("hello.demo.svc", scope), svc);
  assertEquals(parseClusterName("hello.demo.svc.cluster.local", scope), svc);
  assertEquals(parseClusterName("db-0.db.demo", scope), {
    kind: "pod-hostname",
    namespace: "demo",
    service: "db",
    hostname: "db-0",
  });
  assertEquals(parseClusterName("db-0.db.demo.svc.cluster.local", scope)?.kind, "pod-hostname");
  assertEquals(parseClusterName("10-244-0-5.demo.pod.cluster.local", scope), {
    kind: "pod-ip",
    namespace: "demo",
    ip: "10.244.0.5",
  });
  assertEquals(parseClusterName("_http._tcp.hello.demo.svc.cluster.local", scope), {
    kind: "srv",
    namespace: "demo",
    service: "hello",
    port: "http",
    protocol: "tcp",
  });
  assertEquals(parseClusterName("what.ever.cluster.local", scope)?.kind, "zone");
});

Deno.test("names: a namespace never captures a public TLD unless listed explicitly (go.dev)", () => {
  assert(isPublicTld("dev"));
  assertEquals(parseClusterName("go.dev", scope), null);
  assertEquals(parseClusterName("example.com", scope), null);
  assertEquals(parseClusterName("hello.unknownns", scope), null);
  assertEquals(parseClusterName("go.dev", { ...scope, explicitNamespaces: new Set(["dev"]) }), {
    kind: "service",
    namespace: "dev",
    service: "go",
  });
  assertEquals(parseClusterName("go.dev.svc.cluster.local", scope)?.kind, "service");
});

Deno.test("vip: --vip-base forms, first VIP at base+2, TUN at base+1 (P28)", () => {
  assertEquals(parseVipBase(undefined), { base: (198 << 24 | 18 << 16) >>> 0, prefix: 15 });
  const pool = new VipPool({ network: parseVipBase("10.99.0.0"), staleMs: 0 });
  assertEquals(pool.cidr, "10.99.0.0/16");
  assertEquals(pool.tunAddress, "10.99.0.1");
  assertEquals(pool.allocate({ type: "service", namespace: "a", name: "b" }), "10.99.0.2");
  assertThrows(() => parseVipBase("10.99.0.0/40"), /prefix length must be 8 to 30/);
  assertThrows(() => parseVipBase("nonsense"), /is not an IPv4 address or CIDR/);
});

Deno.test("vip: the same service keeps its VIP across restarts (P27, D14)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const statePath = `${dir}/vips.json`;
    const first = new VipPool({ network: parseVipBase(undefined), staleMs: 0, statePath });
    first.allocate({ type: "service", namespace: "demo", name: "other" });
    const hello = first.allocate({ type: "service", namespace: "demo", name: "hello" });
    const second = new VipPool({ network: parseVipBase(undefined), staleMs: 0, statePath });
    assertEquals(second.allocate({ type: "service", namespace: "demo", name: "hello" }), hello);
    assert(second.allocate({ type: "service", namespace: "demo", name: "new" }) !== hello);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("vip: unused VIPs are reclaimed after the stale timeout, busy ones kept, 0 = never (P26)", () => {
  let now = 0;
  const pool = new VipPool({ network: parseVipBase(undefined), staleMs: 5000, now: () => now });
  const idle = pool.allocate({ type: "service", namespace: "a", name: "idle" });
  const busy = pool.allocate({ type: "service", namespace: "a", name: "busy" });
  now = 10_000;
  assertEquals(pool.sweep((vip) => vip === busy), [idle]);
  assertEquals(pool.lookup(idle), undefined);
  const never = new VipPool({ network: parseVipBase(undefined), staleMs: 0, now: () => now });
  never.allocate({ type: "service", namespace: "a", name: "x" });
  now = 1e9;
  assertEquals(never.sweep(), []);
});
