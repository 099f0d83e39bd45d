/**
 * The simulated cluster, driven by `@kubernetes/client-node` itself: lists, watches, 410 after
 * compaction, port-forward (v4) byte-exact, auth errors with Status bodies (docs/portforward.md §11).
 */
import * as k8s from "@kubernetes/client-node";
import { PassThrough } from "node:stream";
import { assert, assertEquals, assertMatch } from "../assert.ts";
import { DEMO_FIXTURE, startSimCluster } from "../../sim/mod.ts";

function clientFor(kubeconfig: string) {
  const kc = new k8s.KubeConfig();
  kc.loadFromString(kubeconfig);
  return kc;
}

Deno.test({
  name: "sim: client-node lists every kind with resource versions and the REST shapes",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using sim = await startSimCluster({ fixture: DEMO_FIXTURE });
    const kc = clientFor(sim.kubeconfig());
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const namespaces = await core.listNamespace();
    assertEquals(namespaces.items.map((n) => n.metadata?.name).sort(), ["default", "demo"]);
    assertMatch(namespaces.metadata?.resourceVersion ?? "", /^\d+$/);
    const services = await core.listNamespacedService({ namespace: "demo" });
    const hello = services.items.find((s) => s.metadata?.name === "hello")!;
    assertEquals(hello.spec?.ports?.[0].targetPort, "http");
    assertMatch(hello.spec?.clusterIP ?? "", /^10\.96\./);
    const db = services.items.find((s) => s.metadata?.name === "db")!;
    assertEquals(db.spec?.clusterIP, "None");
    const slices = await kc.makeApiClient(k8s.DiscoveryV1Api).listNamespacedEndpointSlice({
      namespace: "demo",
      labelSelector: "kubernetes.io/service-name=hello",
    });
    assertEquals(slices.items.length, 1);
    assertEquals(slices.items[0].ports?.[0].port, 8080, "named target port resolved");
    assertEquals(slices.items[0].endpoints.length, 2);
    assert(slices.items[0].endpoints.every((e) => e.conditions?.ready === true));
    const dbSlice = await kc.makeApiClient(k8s.DiscoveryV1Api).listNamespacedEndpointSlice({
      namespace: "demo",
      labelSelector: "kubernetes.io/service-name=db",
    });
    assertEquals(dbSlice.items[0].endpoints.map((e) => e.hostname).sort(), ["db-0", "db-1"]);
    const pods = await core.listNamespacedPod({ namespace: "demo" });
    assertEquals(pods.items.length, 5);
  },
});

Deno.test({
  name: "sim: watches see ADDED, MODIFIED and DELETED; a compacted version gets 410 Gone",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using sim = await startSimCluster({ fixture: DEMO_FIXTURE });
    const kc = clientFor(sim.kubeconfig());
    const list = await kc.makeApiClient(k8s.CoreV1Api).listNamespacedPod({ namespace: "demo" });
    const events: string[] = [];
    const watch = new k8s.Watch(kc);
    const done = new Promise<void>((resolve) => {
      watch.watch(
        "/api/v1/namespaces/demo/pods",
        { resourceVersion: list.metadata?.resourceVersion, allowWatchBookmarks: true },
        (type, obj) => {
          events.push(`${type} ${obj.metadata?.name}`);
          if (events.length === 3) resolve();
        },
        () => resolve(),
      );
    });
    sim.addPod("demo", {
      name: "hello-new",
      labels: { app: "hello" },
      ready: true,
      ports: [{ name: "http", containerPort: 8080, serve: "http" }],
    });
    sim.setPodReady("demo", "hello-new", false);
    sim.deletePod("demo", "hello-new");
    await done;
    assertEquals(events, ["ADDED hello-new", "MODIFIED hello-new", "DELETED hello-new"]);
    sim.dropWatches();

    sim.compact();
    const expired = await new Promise<{ type: string; code?: number }>((resolve) => {
      watch.watch("/api/v1/namespaces/demo/pods", {
        resourceVersion: list.metadata?.resourceVersion,
      }, (type, obj) => {
        resolve({ type, code: obj?.code });
      }, () => {});
    });
    assertEquals(expired, { type: "ERROR", code: 410 });
    sim.dropWatches();
  },
});

Deno.test({
  name: "sim: a wrong token gets 401 with a Kubernetes Status body",
  async fn() {
    await using sim = await startSimCluster({ fixture: DEMO_FIXTURE, tls: false });
    const response = await fetch(`${sim.url}/api/v1/namespaces`, {
      headers: { authorization: "Bearer wrong" },
    });
    assertEquals(response.status, 401);
    assertEquals(await response.json(), {
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message: "Unauthorized",
      reason: "Unauthorized",
      code: 401,
    });
  },
});

Deno.test({
  name: "sim: 10 MiB each way through client-node's own port-forward client (v4), byte-exact",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using sim = await startSimCluster({ fixture: DEMO_FIXTURE });
    const kc = clientFor(sim.kubeconfig());
    const forward = new k8s.PortForward(kc);
    const size = 10 * 1024 * 1024;
    const payload = new Uint8Array(size);
    for (let i = 0; i < size; i += 65536) crypto.getRandomValues(payload.subarray(i, i + 65536));
    const output = new PassThrough();
    const input = new PassThrough();
    const chunks: Uint8Array[] = [];
    let received = 0;
    const complete = new Promise<void>((resolve) => {
      output.on("data", (chunk: Uint8Array) => {
        chunks.push(new Uint8Array(chunk));
        received += chunk.length;
        if (received >= size) resolve();
      });
    });
    const socket = await forward.portForward(
      "demo",
      "echo-5c6b-m9t2z",
      [7007],
      output,
      null,
      input,
    );
    for (let i = 0; i < size; i += 256 * 1024) input.write(payload.subarray(i, i + 256 * 1024));
    await complete;
    const echoed = new Uint8Array(size);
    let off = 0;
    for (const c of chunks) {
      echoed.set(c.subarray(0, Math.min(c.length, size - off)), off);
      off += c.length;
    }
    const digest = async (b: Uint8Array) =>
      new Uint8Array(await crypto.subtle.digest("SHA-256", b as Uint8Array<ArrayBuffer>));
    assertEquals(await digest(echoed), await digest(payload));
    (socket as { close(): void }).close();
  },
});

Deno.test({
  name: "sim: a port nobody listens on reports the kubelet-style error on the error channel",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using sim = await startSimCluster({ fixture: DEMO_FIXTURE });
    const kc = clientFor(sim.kubeconfig());
    const forward = new k8s.PortForward(kc);
    const errors = new PassThrough();
    let text = "";
    const got = new Promise<void>((resolve) => {
      errors.on("data", (c: Uint8Array) => {
        text += new TextDecoder().decode(c);
        resolve();
      });
    });
    const socket = await forward.portForward(
      "demo",
      "db-0",
      [9999],
      new PassThrough(),
      errors,
      new PassThrough(),
    );
    await got;
    const uid = sim.state.pod("demo", "db-0")!.uid;
    assertEquals(
      text,
      `error forwarding port 9999 to pod db-0, uid ${uid}: dial tcp4 127.0.0.1:9999: connect: connection refused`,
    );
    (socket as { close(): void }).close();
  },
});

Deno.test({
  name:
    "sim: a watch with bookmarks from the current version answers its headers at once, before any event (client-go's Watch waits for them)",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using sim = await startSimCluster({ fixture: DEMO_FIXTURE, tls: false });
    const rv = sim.state.resourceVersion;
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), 2000);
    const response = await fetch(
      `${sim.url}/api/v1/namespaces?watch=true&allowWatchBookmarks=true&resourceVersion=${rv}&timeoutSeconds=30`,
      { headers: { authorization: `Bearer ${sim.token}` }, signal: abort.signal },
    );
    clearTimeout(timer);
    assertEquals(response.status, 200);
    assertEquals(response.headers.get("content-type"), "application/json");
    abort.abort();
    await response.body?.cancel().catch(() => {});
  },
});

Deno.test({
  name:
    "sim: client-node pages a list with limit and continue, one snapshot version throughout; a token from before a compaction is 410 Expired",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using sim = await startSimCluster({ fixture: DEMO_FIXTURE });
    const core = clientFor(sim.kubeconfig()).makeApiClient(k8s.CoreV1Api);
    const whole = await core.listNamespacedService({ namespace: "demo" });
    const names: string[] = [];
    let token: string | undefined;
    const versions = new Set<string>();
    do {
      const page = await core.listNamespacedService({
        namespace: "demo",
        limit: 1,
        _continue: token,
      });
      assert(page.items.length <= 1);
      names.push(...page.items.map((s) => s.metadata!.name!));
      versions.add(page.metadata!.resourceVersion!);
      token = page.metadata?._continue;
      // A change between pages does not move the version the pages report.
      if (names.length === 1) {
        sim.addService("default", {
          name: "between-pages",
          headless: false,
          selector: {},
          ports: [{ port: 1, targetPort: 1, protocol: "TCP" }],
        });
      }
    } while (token);
    assertEquals(names, whole.items.map((s) => s.metadata!.name!));
    assertEquals(versions.size, 1);

    const first = await core.listNamespacedService({ namespace: "demo", limit: 1 });
    sim.deleteService("default", "between-pages");
    sim.compact(); // the first page's snapshot is gone
    const error = await core.listNamespacedService({
      namespace: "demo",
      limit: 1,
      _continue: first.metadata!._continue,
    }).catch((e) => e);
    assertEquals(error?.code, 410);
    assertMatch(String(error?.body), /continue parameter is too old/);
  },
});
