/** The cluster view against the simulated cluster: endpoint changes, 410s, dropped watches, credentials. */
import { ApiAccess } from "../../core/k8s/api_access.ts";
import { assert, assertEquals, assertMatch } from "../assert.ts";
import { ClusterAccessError, startClusterSync } from "../../core/cluster/sync.ts";
import { ApiClient } from "../../core/k8s/api_client.ts";
import { DEMO_FIXTURE, startSimCluster } from "../../sim/mod.ts";
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
    const kc = ApiAccess.fromText(sim.kubeconfig());
    const view = await startClusterSync({ access: kc, namespaces: ["demo"] });
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
    const kc = ApiAccess.fromText(sim.kubeconfig().replace("token: right", "token: wrong"));
    const error = await startClusterSync({ access: kc, namespaces: ["demo"] }).catch((e) => e);
    assert(error instanceof Error);
    assertEquals(
      error.message,
      `the API server at ${sim.url} rejected the credentials of context "k8stun-sim" (401 Unauthorized)`,
    );
  },
});

Deno.test({
  name:
    "cluster: a credential plugin that fails, or a proxy-url that cannot be used, is one line naming the context and what to fix — not 'cannot reach the API server'",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using sim = await startSimCluster({ fixture: DEMO_FIXTURE, token: "right" });
    const viaPlugin = ApiAccess.fromText(
      sim.kubeconfig().replace(
        "token: right",
        "exec: {apiVersion: client.authentication.k8s.io/v1, command: k8stun-no-such-plugin, " +
          "interactiveMode: Never, installHint: 'install it with brew'}",
      ),
    );
    const pluginError = await startClusterSync({ access: viaPlugin, namespaces: ["demo"] })
      .catch((e) => e);
    assert(pluginError instanceof ClusterAccessError);
    assertMatch(pluginError.message, /^context "k8stun-sim": .*k8stun-no-such-plugin.*brew/);
    assert(!pluginError.message.includes("\n"), pluginError.message);
    const viaProxy = ApiAccess.fromText(
      sim.kubeconfig().replace(
        `server: ${sim.url}`,
        `server: ${sim.url}\n    proxy-url: https://proxy.example:3128`,
      ),
    );
    const proxyError = await startClusterSync({ access: viaProxy, namespaces: ["demo"] })
      .catch((e) => e);
    assert(proxyError instanceof ClusterAccessError);
    assertMatch(proxyError.message, /^context "k8stun-sim": .*https:\/\/.*socks5:\/\//);
  },
});

Deno.test({
  name:
    "cluster: lists are read in pages (limit and continue) and every page's objects reach the store",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using sim = await startSimCluster({ fixture: DEMO_FIXTURE });
    const access = ApiAccess.fromText(sim.kubeconfig());
    // The simulator pages as the API server does: the objects asked for and a token for the rest.
    const api = new ApiClient(access, { handshakeTimeoutMs: 5_000 });
    const first = await api.get<{ items: unknown[]; metadata: { continue?: string } }>(
      "/api/v1/namespaces/demo/services?limit=1",
    );
    assertEquals(first.items.length, 1);
    assert(first.metadata.continue, "a page of one service says there are more");
    const contents = (view: Awaited<ReturnType<typeof startClusterSync>>) => ({
      namespaces: view.store.namespaces(),
      services: view.store.services().map((s) => `${s.namespace}/${s.name}`).sort(),
      endpoints: view.store.readyEndpoints("demo", "hello", 80).map((e) => e.pod?.name).sort(),
      statefulPod: view.store.hasPod("demo", "db-0"),
    });
    const whole = await startClusterSync({ access, namespaces: ["demo"] });
    const paged = await startClusterSync({ access, namespaces: ["demo"], listPageSize: 1 });
    try {
      await Promise.all([whole.synced, paged.synced]);
      assert(contents(whole).services.length > 2, "the fixture has several services");
      assertEquals(contents(paged), contents(whole));
    } finally {
      whole.close();
      paged.close();
    }
  },
});
