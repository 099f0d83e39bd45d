/**
 * The cluster view against an API server that sends misshapen objects (core/cluster/
 * object_shape.ts): in a list and in watch events they are left out and the rest is kept, so one
 * bad object neither fails the sync nor reaches the store.
 */
import { assert, assertEquals } from "../assert.ts";
import { ApiAccess } from "../../core/k8s/api_access.ts";
import { startClusterSync } from "../../core/cluster/sync.ts";
import { tokenKubeconfig } from "../kubeconfig/token_kubeconfig.ts";

const GOOD_SERVICE = {
  metadata: { name: "hello", namespace: "demo", resourceVersion: "5" },
  spec: { clusterIP: "10.96.0.5", ports: [{ name: "http", port: 80, targetPort: 8080 }] },
};

/** Lists, then watches: a services watch that sends `events` and then stays quiet. */
function hostileApi(events: unknown[]) {
  const stopping = new AbortController();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    const url = new URL(request.url);
    const resource = url.pathname.split("/").at(-1)!;
    if (url.searchParams.has("watch")) {
      const lines = resource === "services" ? events : [];
      const body = new ReadableStream<Uint8Array>({
        async start(controller) {
          for (const event of lines) {
            controller.enqueue(new TextEncoder().encode(JSON.stringify(event) + "\n"));
          }
          await new Promise((resolve) => stopping.signal.addEventListener("abort", resolve));
          controller.close();
        },
      });
      return new Response(body);
    }
    const items: Record<string, unknown[]> = {
      namespaces: [{ metadata: { name: "demo" } }, { metadata: { name: "Not A Name" } }, 7],
      services: [
        GOOD_SERVICE,
        null,
        { metadata: { name: "broken", namespace: "demo" }, spec: { ports: "all of them" } },
        { metadata: { name: "ports", namespace: "demo" }, spec: { ports: [{ port: "80" }] } },
      ],
      endpointslices: [{
        metadata: {
          name: "bad",
          namespace: "demo",
          labels: { "kubernetes.io/service-name": "hello" },
        },
        endpoints: { addresses: ["10.0.0.1"] },
      }],
      pods: [{ metadata: { name: "p", namespace: "demo" }, status: { conditions: "Ready" } }],
    };
    return Response.json({ metadata: { resourceVersion: "5" }, items: items[resource] ?? [] });
  });
  return {
    kubeconfig: tokenKubeconfig(`http://127.0.0.1:${server.addr.port}`),
    async [Symbol.asyncDispose]() {
      stopping.abort();
      await server.shutdown();
    },
  };
}

Deno.test({
  name:
    "cluster: misshapen objects in a list or a watch are left out and the rest is synced; a misshapen change keeps the last good version",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const later = {
      metadata: { name: "later", namespace: "demo", resourceVersion: "7" },
      spec: { clusterIP: "10.96.0.6", ports: [{ port: 81 }] },
    };
    await using api = hostileApi([
      // A change to hello that is misshapen, a misshapen newcomer, then a good newcomer.
      { type: "MODIFIED", object: { ...GOOD_SERVICE, spec: { ports: [{ port: -1 }] } } },
      { type: "ADDED", object: { metadata: { name: 5, namespace: "demo" } } },
      { type: "DELETED", object: { metadata: "hello" } },
      { type: "ADDED", object: later },
    ]);
    const refused: Record<string, number> = {};
    const view = await startClusterSync({
      access: ApiAccess.fromText(api.kubeconfig),
      namespaces: ["demo"],
      probeIntervalMs: 0,
      telemetry: {
        emit(event) {
          if (event.type === "object_refused") {
            refused[event.resource] = (refused[event.resource] ?? 0) + 1;
          }
        },
      },
    });
    try {
      await view.synced;
      const store = view.store;
      for (let i = 0; i < 100 && !store.hasService("demo", "later"); i++) {
        await new Promise((r) => setTimeout(r, 20));
      }
      assertEquals(store.services().map((s) => s.name).sort(), ["hello", "later"]);
      assertEquals(store.service("demo", "hello")?.ports.map((p) => p.port), [80]);
      assertEquals(store.namespaces(), ["demo"]);
      assert(!store.hasPod("demo", "p"), "the pod with conditions that are no list is left out");
      assertEquals(store.readyEndpoints("demo", "hello", 80), []);
      // Each left-out object is counted (k8stun_cluster_objects_refused_total): three in the
      // services list and three watch events; two namespaces, one slice, one pod.
      assertEquals(refused, { services: 6, namespaces: 2, endpointslices: 1, pods: 1 });
    } finally {
      view.close();
    }
  },
});
