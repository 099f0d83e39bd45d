/** shapeProblem (core/cluster/object_shape.ts): what the store may take from the API's JSON. */
import { assert, assertEquals, assertMatch } from "../assert.ts";
import { objectName, type Resource, shapeProblem } from "../../core/cluster/object_shape.ts";
import { ClusterStore } from "../../core/cluster/store.ts";

const meta = { name: "hello", namespace: "demo", uid: "u-1", resourceVersion: "7" };

/** Well-formed objects of every kind, as a real API server serves them. */
const GOOD: Record<Resource, unknown[]> = {
  namespaces: [{ metadata: { name: "demo" } }],
  services: [
    {
      metadata: meta,
      spec: {
        type: "ClusterIP",
        clusterIP: "10.96.0.5",
        ports: [{ name: "http", port: 80, protocol: "TCP", targetPort: "http" }, {
          port: 443,
          targetPort: 8443,
        }],
      },
    },
    {
      metadata: { name: "ext", namespace: "demo" },
      spec: { type: "ExternalName", externalName: "a.b" },
    },
    { metadata: { name: "bare", namespace: "demo" } },
  ],
  pods: [{
    metadata: { ...meta, name: "db-0", labels: { app: "db" } },
    spec: {
      hostname: "db-0",
      subdomain: "db",
      containers: [{ ports: [{ name: "pg", containerPort: 5432 }] }, {}],
    },
    status: {
      podIP: "10.244.0.7",
      phase: "Running",
      conditions: [{ type: "Ready", status: "True" }],
    },
  }],
  endpointslices: [{
    metadata: { ...meta, name: "hello-abc", labels: { "kubernetes.io/service-name": "hello" } },
    addressType: "IPv4",
    ports: [{ name: "http", port: 8080, protocol: "TCP" }, { name: "pending" }],
    endpoints: [{
      addresses: ["10.244.0.7"],
      conditions: { ready: true, terminating: false },
      targetRef: { kind: "Pod", namespace: "demo", name: "hello-1" },
    }, { addresses: ["10.244.0.8"], conditions: { ready: null } }],
  }, {
    metadata: {
      name: "all-ports",
      namespace: "demo",
      labels: { "kubernetes.io/service-name": "x" },
    },
    ports: null,
    endpoints: null,
  }],
};

/** Misshapen objects of every kind, each with the problem it must be refused for. */
const BAD: [Resource, unknown, RegExp][] = [
  ["services", null, /is not an object/],
  ["services", [], /is not an object/],
  ["services", "hello", /is not an object/],
  ["services", {}, /^metadata is not an object/],
  [
    "services",
    { metadata: { name: 5, namespace: "demo" } },
    /^metadata\.name is not a Kubernetes name/,
  ],
  ["services", { metadata: { name: "hello" } }, /^metadata\.namespace is not a Kubernetes name/],
  ["services", { metadata: { name: "Hello World", namespace: "demo" } }, /metadata\.name/],
  ["services", { metadata: { name: "a\nb", namespace: "demo" } }, /metadata\.name/],
  ["services", { metadata: { name: "__proto__", namespace: "demo" } }, /metadata\.name/],
  ["services", { metadata: { name: "x".repeat(254), namespace: "demo" } }, /metadata\.name/],
  ["services", { metadata: { ...meta, resourceVersion: {} } }, /metadata\.resourceVersion/],
  ["services", { metadata: meta, spec: "x" }, /^spec is not an object/],
  ["services", { metadata: meta, spec: { ports: "x" } }, /^spec\.ports is not a list/],
  ["services", { metadata: meta, spec: { ports: [null] } }, /^spec\.ports\[0\] is not an object/],
  [
    "services",
    { metadata: meta, spec: { ports: [{ port: "80" }] } },
    /ports\[0\]\.port is not a port/,
  ],
  ["services", { metadata: meta, spec: { ports: [{ port: 70000 }] } }, /ports\[0\]\.port/],
  ["services", { metadata: meta, spec: { ports: [{ port: 80, targetPort: {} }] } }, /targetPort/],
  ["services", { metadata: meta, spec: { clusterIP: 7 } }, /^spec\.clusterIP is not a string/],
  ["pods", { metadata: meta, status: { conditions: 7 } }, /^status\.conditions is not a list/],
  ["pods", { metadata: meta, status: { podIP: ["10.0.0.1"] } }, /^status\.podIP/],
  ["pods", { metadata: meta, spec: { containers: [{ ports: [{}] }] } }, /containerPort/],
  ["pods", { metadata: meta, spec: { hostname: {} } }, /^spec\.hostname/],
  ["endpointslices", { metadata: meta, endpoints: {} }, /^endpoints is not a list/],
  [
    "endpointslices",
    { metadata: meta, endpoints: [{ addresses: "x" }] },
    /addresses is not a list/,
  ],
  ["endpointslices", { metadata: meta, endpoints: [{ addresses: [5] }] }, /addresses\[0\]/],
  ["endpointslices", { metadata: meta, endpoints: [{ conditions: 5 }] }, /conditions/],
  ["endpointslices", { metadata: meta, endpoints: [{ conditions: { ready: "yes" } }] }, /ready/],
  ["endpointslices", { metadata: meta, endpoints: [{ targetRef: 7 }] }, /targetRef/],
  ["endpointslices", { metadata: meta, ports: 5 }, /^ports is not a list/],
  ["endpointslices", { metadata: meta, ports: [null, { port: "x" }] }, /^ports\[0\]/],
  [
    "endpointslices",
    { metadata: { ...meta, labels: { "kubernetes.io/service-name": 5 } } },
    /service-name/,
  ],
  ["endpointslices", { metadata: { ...meta, labels: "x" } }, /^metadata\.labels is not an object/],
  ["namespaces", { metadata: { name: "" } }, /^metadata\.name/],
];

Deno.test("object shape: well-formed objects of every kind pass, and the store takes them", () => {
  const store = new ClusterStore();
  for (const [resource, objects] of Object.entries(GOOD) as [Resource, unknown[]][]) {
    for (const object of objects) {
      assertEquals(shapeProblem(resource, object), undefined, JSON.stringify(object));
    }
  }
  for (const o of GOOD.namespaces) store.applyNamespace(o as never);
  for (const o of GOOD.services) store.applyService(o as never);
  for (const o of GOOD.pods) store.applyPod(o as never);
  for (const o of GOOD.endpointslices) store.applyEndpointSlice(o as never);
  assertEquals(store.services().length, 3);
  assertEquals(store.readyEndpoints("demo", "hello", 80).map((e) => e.port), [8080, 8080]);
});

Deno.test("object shape: misshapen objects are refused with the field that is wrong", () => {
  for (const [resource, object, problem] of BAD) {
    const found = shapeProblem(resource, object);
    assert(found !== undefined, `${resource} ${JSON.stringify(object)} passed`);
    assertMatch(found, problem);
  }
});

Deno.test("object shape: a report names the object without carrying control characters or its whole name", () => {
  assertEquals(objectName({ metadata: { name: "hello", namespace: "demo" } }), "demo/hello");
  assertEquals(objectName({ metadata: { name: "demo" } }), "demo");
  assertEquals(objectName(null), "?");
  assertEquals(
    objectName({ metadata: { name: "a\nb\u001b[31m", namespace: 5 } }),
    "?/a\\nb\\u001b[31m",
  );
  assert(objectName({ metadata: { name: "x".repeat(10_000) } }).length <= 80);
});
