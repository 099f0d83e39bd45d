/** The Kubernetes name grammar (core/names.ts): every name form, and public TLDs left alone. */
import { assert, assertEquals } from "../assert.ts";
import { isPublicTld, type NameScope, parseClusterName } from "../../core/names.ts";

const scope: NameScope = {
  clusterDomain: "cluster.local",
  isNamespace: (ns) => ["demo", "dev", "default"].includes(ns),
  explicitNamespaces: new Set<string>(),
};

Deno.test("names: every Kubernetes name form parses (docs/portforward.md §11, docs/compatibility.md §4)", () => {
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
