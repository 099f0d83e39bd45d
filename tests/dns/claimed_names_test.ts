/**
 * The names k8stun may answer itself (core/dns/claimed_names.ts): every name the cluster grammar
 * reads as the cluster's must be claimed — an unclaimed one is forwarded by the packet loop
 * without a look at the cluster — while public names stay unclaimed.
 */
import { assert, assertEquals } from "../assert.ts";
import { ClaimedNames, nameClaims } from "../../core/dns/claimed_names.ts";
import { type NameScope, parseClusterName } from "../../core/names.ts";

const NAMESPACES = ["default", "demo", "dev", "payments-eu", "io"];

function scope(overrides: Partial<NameScope> = {}): NameScope {
  return {
    clusterDomain: "cluster.local",
    isNamespace: (ns) => NAMESPACES.includes(ns),
    explicitNamespaces: new Set(["io"]),
    ...overrides,
  };
}

/** A small deterministic generator (mulberry32), so a failure names a reproducible name. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const LABELS = [
  ...NAMESPACES,
  "svc",
  "pod",
  "cluster",
  "local",
  "com",
  "example",
  "www",
  "hello",
  "10-244-0-5",
  "_http",
  "_tcp",
  "web-0",
  "go",
];

for (const bare of [undefined, "demo"]) {
  Deno.test(`claimed names: every name the cluster grammar reads is claimed (default namespace: ${bare ?? "none"})`, () => {
    const s = scope(bare ? { defaultNamespace: bare } : {});
    const claimed = new ClaimedNames(nameClaims(s, NAMESPACES));
    const next = random(bare ? 7 : 11);
    let cluster = 0;
    let forwarded = 0;
    for (let i = 0; i < 20_000; i++) {
      const length = 1 + Math.floor(next() * 6);
      const name = Array.from({ length }, () => LABELS[Math.floor(next() * LABELS.length)])
        .join(".");
      const isCluster = parseClusterName(name, s) !== null;
      const mayClaim = claimed.mayClaim(name);
      if (isCluster) {
        cluster++;
        assert(mayClaim, `${name} is a cluster name but not claimed`);
      }
      if (!mayClaim) forwarded++;
    }
    // Neither side may be empty, or the check proves nothing.
    assert(cluster > 1000, `only ${cluster} cluster names generated`);
    assert(forwarded > 1000, `only ${forwarded} names left unclaimed`);
  });
}

Deno.test("claimed names: public names stay unclaimed, a public-TLD namespace only when listed", () => {
  const claimed = new ClaimedNames(nameClaims(scope(), NAMESPACES));
  for (
    const name of ["www.example.com", "go.dev", "github.com", "localhost", "", "svc.example.org"]
  ) {
    assertEquals(claimed.mayClaim(name), false, name);
  }
  // `io` was listed with -n: it may shadow the public TLD, as the grammar lets it.
  for (
    const name of ["api.io", "hello.demo", "a.b.cluster.local", "cluster.local", "x.svc", "y.pod"]
  ) {
    assertEquals(claimed.mayClaim(name), true, name);
  }
  assertEquals(claimed.mayClaim("backend"), false, "bare names are not claimed without a default");
});

Deno.test("claimed names: the suffixes split DNS hands the system, normalised", () => {
  const claims = nameClaims(scope({ clusterDomain: "Corp.Example." }), NAMESPACES);
  assertEquals(claims.suffixes, [
    "corp.example",
    "svc",
    "pod",
    "default",
    "demo",
    "payments-eu",
    "io",
  ]);
  assertEquals(claims.bareNames, false);
  assertEquals(claims.everything, false);
});

Deno.test("claimed names: a plugin that answers names claims every name; escaped dots go to the grammar", () => {
  const everything = new ClaimedNames(nameClaims(scope(), NAMESPACES, true));
  assertEquals(everything.mayClaim("www.example.com"), true);
  const claimed = new ClaimedNames(nameClaims(scope(), NAMESPACES));
  assertEquals(claimed.mayClaim("a\\.b.example.com"), true);
});
