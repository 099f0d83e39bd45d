/**
 * The simulated cluster takes writes as a real API server does, driven by client-node as a real
 * client would: namespaces, services and pods created, patched (merge, strategic merge, JSON
 * Patch) and deleted, EndpointSlices following, watches seeing each write, a created pod
 * reachable by port-forward; and writes refused with the API server's status codes.
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

const patchAs = (type: string) => k8s.setHeaderOptions("Content-Type", type);

/** An HTTP GET through client-node's own port-forward client; resolves with the pod's answer. */
async function getThroughPortForward(
  kc: k8s.KubeConfig,
  namespace: string,
  pod: string,
  port: number,
): Promise<string> {
  const output = new PassThrough();
  const input = new PassThrough();
  let text = "";
  const answered = new Promise<void>((resolve) => {
    output.on("data", (chunk: Uint8Array) => {
      text += new TextDecoder().decode(chunk);
      if (text.includes("\r\n\r\n") && text.endsWith("\n")) resolve();
    });
  });
  const socket = await new k8s.PortForward(kc).portForward(
    namespace,
    pod,
    [port],
    output,
    null,
    input,
  );
  input.write("GET / HTTP/1.1\r\nhost: pod\r\nconnection: close\r\n\r\n");
  await answered;
  (socket as { close(): void }).close();
  return text;
}

type SliceList = {
  items: { endpoints: { addresses: string[]; conditions?: { ready?: boolean } }[] }[];
};

Deno.test({
  name:
    "sim: client-node creates, patches and deletes namespaces, services and pods; EndpointSlices follow, watches see every write with increasing versions, a created pod is reachable by port-forward",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using sim = await startSimCluster({ fixture: DEMO_FIXTURE });
    const kc = clientFor(sim.kubeconfig());
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const discovery = kc.makeApiClient(k8s.DiscoveryV1Api);
    const slices = async () =>
      (await discovery.listNamespacedEndpointSlice({
        namespace: "rehearse",
        labelSelector: "kubernetes.io/service-name=web",
      })) as unknown as SliceList;

    await core.createNamespace({ body: { metadata: { name: "rehearse" } } });
    const events: { type: string; name: string; rv: number; labels: string }[] = [];
    const watched = new Promise<void>((resolve) => {
      new k8s.Watch(kc).watch(
        "/api/v1/namespaces/rehearse/pods",
        { resourceVersion: String(sim.state.resourceVersion) },
        (type, pod) => {
          events.push({
            type,
            name: pod.metadata.name,
            rv: Number(pod.metadata.resourceVersion),
            labels: JSON.stringify(pod.metadata.labels ?? {}),
          });
          if (type === "DELETED") resolve();
        },
        () => resolve(),
      );
    });

    const service = await core.createNamespacedService({
      namespace: "rehearse",
      body: {
        metadata: { name: "web" },
        spec: { selector: { app: "web" }, ports: [{ name: "http", port: 80, targetPort: "http" }] },
      },
    });
    assertMatch(service.spec?.clusterIP ?? "", /^10\.96\./);
    assertEquals((await slices()).items.length, 0, "no pod selected yet");

    const pod = await core.createNamespacedPod({
      namespace: "rehearse",
      body: {
        metadata: { name: "web-1", labels: { app: "web" } },
        spec: {
          containers: [{
            name: "nginx",
            image: "nginx",
            ports: [{ name: "http", containerPort: 8080 }],
          }],
        },
      },
    });
    const ip = pod.status?.podIP;
    assertMatch(ip ?? "", /^10\.244\./);
    assertEquals(pod.spec?.containers[0].name, "nginx", "the containers as written");
    assertEquals((await slices()).items[0].endpoints.map((e) => e.addresses[0]), [ip]);
    assertMatch(await getThroughPortForward(kc, "rehearse", "web-1", 8080), /hello from web-1/);

    // Merge patch: the pod leaves the service; strategic merge patch: it comes back.
    await core.patchNamespacedPod(
      { name: "web-1", namespace: "rehearse", body: { metadata: { labels: { app: "other" } } } },
      patchAs(k8s.PatchStrategy.MergePatch),
    );
    assertEquals((await slices()).items.length, 0, "no pod selected after the relabel");
    await core.patchNamespacedPod(
      { name: "web-1", namespace: "rehearse", body: { metadata: { labels: { app: "web" } } } },
      patchAs(k8s.PatchStrategy.StrategicMergePatch),
    );
    assertEquals((await slices()).items[0].endpoints.length, 1);
    // The kubelet's side: the Ready condition through the status subresource.
    await core.patchNamespacedPodStatus(
      {
        name: "web-1",
        namespace: "rehearse",
        body: { status: { conditions: [{ type: "Ready", status: "False" }] } },
      },
      patchAs(k8s.PatchStrategy.StrategicMergePatch),
    );
    assertEquals((await slices()).items[0].endpoints[0].conditions?.ready, false);
    // JSON Patch (client-node's default) on the service: a second port.
    const patched = await core.patchNamespacedService({
      name: "web",
      namespace: "rehearse",
      body: [
        { op: "replace", path: "/spec/ports/0/name", value: "http" },
        { op: "add", path: "/spec/ports/-", value: { name: "alt", port: 81, targetPort: 8080 } },
      ],
    });
    assertEquals(patched.spec?.ports?.map((p) => p.port), [80, 81]);
    assertEquals(patched.spec?.clusterIP, service.spec?.clusterIP, "the cluster IP is kept");

    await core.deleteNamespacedPod({ name: "web-1", namespace: "rehearse" });
    await watched;
    assertEquals((await slices()).items.length, 0, "the slice goes with the last pod");
    await new k8s.PortForward(kc).portForward(
      "rehearse",
      "web-1",
      [8080],
      new PassThrough(),
      null,
      new PassThrough(),
    ).then(
      () => assert(false, "port-forward to a deleted pod must fail"),
      () => {},
    );
    assertEquals(events.map((e) => `${e.type} ${e.labels}`), [
      'ADDED {"app":"web"}',
      'MODIFIED {"app":"other"}',
      'MODIFIED {"app":"web"}',
      'MODIFIED {"app":"web"}',
      'DELETED {"app":"web"}',
    ]);
    for (let i = 1; i < events.length; i++) assert(events[i].rv > events[i - 1].rv, "increasing");

    await core.deleteNamespace({ name: "rehearse" });
    assertEquals(sim.state.list("services", "rehearse").length, 0);
    assertEquals(
      (await core.listNamespace()).items.map((n) => n.metadata?.name).sort(),
      ["default", "demo"],
    );
    sim.dropWatches();
  },
});

Deno.test({
  name: "sim: deleting a namespace deletes its pods, and their servers stop",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using sim = await startSimCluster({ fixture: DEMO_FIXTURE });
    const core = clientFor(sim.kubeconfig()).makeApiClient(k8s.CoreV1Api);
    const address = sim.podAddress("demo", "echo-5c6b-m9t2z", 7007)!;
    await core.deleteNamespace({ name: "demo" });
    assertEquals(sim.state.list("pods", "demo").length, 0);
    assertEquals(sim.state.list("endpointslices", "demo").length, 0);
    assertEquals(sim.podAddress("demo", "echo-5c6b-m9t2z", 7007), undefined);
    const refused = await Deno.connect(address).then((c) => (c.close(), false), () => true);
    assert(refused, "the deleted pod's server is closed");
  },
});

Deno.test({
  name:
    "sim: writes are refused as the API server refuses them (409, 404, 422 with the field path, 413, 415, 405)",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using sim = await startSimCluster({ fixture: DEMO_FIXTURE, tls: false });
    const send = async (method: string, path: string, body: unknown, type = "application/json") => {
      const response = await fetch(`${sim.url}${path}`, {
        method,
        headers: { authorization: `Bearer ${sim.token}`, "content-type": type },
        body: typeof body === "string" ? body : JSON.stringify(body),
      });
      return { code: response.status, body: await response.json() };
    };
    const pod = (name: string, containerPort: unknown) => ({
      metadata: { name },
      spec: { containers: [{ name: "app", ports: [{ containerPort }] }] },
    });

    const dup = await send("POST", "/api/v1/namespaces/demo/pods", pod("db-0", 5432));
    assertEquals([dup.code, dup.body.reason], [409, "AlreadyExists"]);
    const noNs = await send("POST", "/api/v1/namespaces/nowhere/pods", pod("x", 80));
    assertEquals([noNs.code, noNs.body.message], [404, 'namespaces "nowhere" not found']);
    const invalid = await send("POST", "/api/v1/namespaces/demo/pods", pod("bad", 0));
    assertEquals([invalid.code, invalid.body.reason], [422, "Invalid"]);
    assertEquals(invalid.body.details.causes[0].field, "spec.containers[0].ports[0].containerPort");
    assertEquals(sim.state.get("pods", "demo", "bad"), undefined, "nothing stored");
    const spec = await send(
      "PATCH",
      "/api/v1/namespaces/demo/pods/db-0",
      { spec: { hostname: "db-9" } },
      "application/merge-patch+json",
    );
    assertEquals([spec.code, spec.body.details.causes[0].field], [422, "spec"]);
    const stale = await send(
      "PATCH",
      "/api/v1/namespaces/demo/services/hello",
      { metadata: { resourceVersion: "1", labels: { a: "b" } } },
      "application/merge-patch+json",
    );
    assertEquals([stale.code, stale.body.reason], [409, "Conflict"]);
    const apply = await send(
      "PATCH",
      "/api/v1/namespaces/demo/pods/db-0",
      {},
      "application/apply-patch+yaml",
    );
    assertEquals(apply.code, 415);
    const slice = await send(
      "POST",
      "/apis/discovery.k8s.io/v1/namespaces/demo/endpointslices",
      { metadata: { name: "s" } },
    );
    assertEquals(slice.code, 405);
    const big = await send("POST", "/api/v1/namespaces/demo/pods", "x".repeat(2 * 1024 * 1024));
    assertEquals([big.code, big.body.reason], [413, "RequestEntityTooLarge"]);
    const deep = await send("POST", "/api/v1/namespaces/demo/pods", "[".repeat(500_000));
    assertEquals(deep.code, 400);
    const proto = await send(
      "PATCH",
      "/api/v1/namespaces/demo/services/hello",
      '{"metadata":{"labels":{"__proto__":{"polluted":"yes"}}}}',
      "application/merge-patch+json",
    );
    assertEquals(proto.code, 422, "a label must be a string");
    assertEquals(({} as Record<string, unknown>).polluted, undefined);
    // The cluster still serves.
    const list = await fetch(`${sim.url}/api/v1/namespaces/demo/pods`, {
      headers: { authorization: `Bearer ${sim.token}` },
    });
    assertEquals((await list.json()).items.length, 5);
  },
});
