/** DNS answers from the cluster view, forwarding, concurrency, truncation and malformed input. */
import dnsPacket from "dns-packet";
import { Buffer } from "node:buffer";
import { assert, assertEquals } from "../assert.ts";
import { ClusterStore } from "../../core/cluster/store.ts";
import { ClusterAnswerer } from "../../core/dns/answer.ts";
import { DnsServer } from "../../core/dns/server.ts";
import { UpstreamResolver, type UpstreamTransport } from "../../core/dns/upstream.ts";
import { parseVipBase, VipPool } from "../../core/vip.ts";

function cluster(): ClusterStore {
  const store = new ClusterStore();
  store.applyNamespace({ metadata: { name: "demo" } });
  store.applyService({
    metadata: { namespace: "demo", name: "hello" },
    spec: {
      clusterIP: "10.96.0.10",
      ports: [{ name: "http", port: 80, protocol: "TCP", targetPort: "http" }],
    },
  });
  store.applyService({
    metadata: { namespace: "demo", name: "search" },
    spec: { type: "ExternalName", externalName: "search.example.com" },
  });
  store.applyPod({
    metadata: { namespace: "demo", name: "db-0", uid: "u" },
    spec: { hostname: "db-0", subdomain: "db", containers: [] },
    status: {
      podIP: "10.244.0.7",
      phase: "Running",
      conditions: [{ type: "Ready", status: "True" }],
    },
  });
  return store;
}

function server(transport: Partial<UpstreamTransport> = {}) {
  const store = cluster();
  const vips = new VipPool({ network: parseVipBase(undefined), staleMs: 0 });
  const answerer = new ClusterAnswerer(store, vips, {
    clusterDomain: "cluster.local",
    isNamespace: (ns) => store.namespaces().includes(ns),
    explicitNamespaces: new Set(),
  });
  const upstream = new UpstreamResolver(["192.0.2.53"], () => ({
    udp: () => Promise.reject(new Error("no upstream in this test")),
    tcp: () => Promise.reject(new Error("no upstream in this test")),
    close: () => Promise.resolve(),
    ...transport,
  }));
  return { dns: new DnsServer(answerer, upstream), vips, store };
}

function query(name: string, type: string, id = 42, edns = false): Uint8Array {
  return new Uint8Array(dnsPacket.encode({
    type: "query",
    id,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type: type as "A", name }],
    additionals: edns ? [{ type: "OPT", name: ".", udpPayloadSize: 1232 } as never] : [],
  }));
}

function decode(bytes: Uint8Array) {
  return dnsPacket.decode(Buffer.from(bytes)) as ReturnType<typeof dnsPacket.decode> & {
    rcode: string;
  };
}

Deno.test("dns: A for a service is its VIP; the same VIP every time", async () => {
  const { dns } = server();
  const a = decode((await dns.handle(query("hello.demo", "A"), true))!);
  assertEquals(a.rcode, "NOERROR");
  assertEquals(a.id, 42);
  assertEquals(a.answers!.length, 1);
  const vip = (a.answers![0] as { data: string }).data;
  assertEquals(vip, "198.18.0.2");
  const again = decode((await dns.handle(query("hello.demo.svc.cluster.local", "A"), true))!);
  assertEquals((again.answers![0] as { data: string }).data, vip);
  assert(((again.answers![0] as { ttl: number }).ttl) <= 60);
});

Deno.test("dns: a repeated query is answered from the cache with its own id; a deleted service is NXDOMAIN at once", async () => {
  const { dns, store } = server();
  const first = decode((await dns.handle(query("hello.demo", "A", 7), true))!);
  const second = decode((await dns.handle(query("hello.demo", "A", 8), true))!);
  assertEquals([first.id, second.id], [7, 8]);
  assertEquals(second.answers, first.answers);
  store.deleteService({ metadata: { namespace: "demo", name: "hello" } });
  const gone = decode((await dns.handle(query("hello.demo", "A", 9), true))!);
  assertEquals([gone.id, gone.rcode], [9, "NXDOMAIN"]);
});

Deno.test("dns: AAAA for an existing name is NOERROR with no records and an SOA (docs/compatibility.md §3 D8)", async () => {
  const { dns } = server();
  const r = decode((await dns.handle(query("hello.demo", "AAAA"), true))!);
  assertEquals(r.rcode, "NOERROR");
  assertEquals(r.answers!.length, 0);
  assertEquals(r.authorities![0].type, "SOA");
});

Deno.test("dns: a missing cluster name is NXDOMAIN with an SOA", async () => {
  const { dns } = server();
  const r = decode((await dns.handle(query("nosuch.demo", "A"), true))!);
  assertEquals(r.rcode, "NXDOMAIN");
  assertEquals(r.authorities![0].type, "SOA");
});

Deno.test("dns: StatefulSet pods, SRV, CNAME for ExternalName and PTR for VIPs", async () => {
  const { dns, vips } = server();
  const pod = decode((await dns.handle(query("db-0.db.demo", "A"), true))!);
  assertEquals(pod.answers![0].type, "A");
  const srv = decode(
    (await dns.handle(query("_http._tcp.hello.demo.svc.cluster.local", "SRV"), true))!,
  );
  assertEquals((srv.answers![0] as { data: { port: number; target: string } }).data.port, 80);
  const cname = decode((await dns.handle(query("search.demo", "A"), true))!);
  assertEquals((cname.answers![0] as { type: string; data: string }).data, "search.example.com");
  const vip = vips.allocate({ type: "service", namespace: "demo", name: "hello" });
  const reversed = vip.split(".").reverse().join(".") + ".in-addr.arpa";
  const ptr = decode((await dns.handle(query(reversed, "PTR"), true))!);
  assertEquals((ptr.answers![0] as { data: string }).data, "hello.demo.svc.cluster.local");
});

Deno.test("dns: other names are forwarded unchanged and the reply passed back as is", async () => {
  let forwarded: Uint8Array | undefined;
  const reply = new Uint8Array(dnsPacket.encode({
    type: "response",
    id: 7,
    flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE,
    questions: [{ type: "A", name: "example.test" }],
    answers: [{ type: "A", name: "example.test", ttl: 300, data: "192.0.2.1" }],
  }));
  const { dns } = server({
    udp: (q) => {
      forwarded = q;
      return Promise.resolve(reply);
    },
  });
  const q = query("example.test", "A", 7, true);
  const answer = await dns.handle(q, true);
  assertEquals(forwarded, q, "the query bytes, EDNS included, went upstream unchanged");
  assertEquals(answer, reply);
});

Deno.test("dns: a slow upstream never delays cluster answers (docs/compatibility.md §3 D5)", async () => {
  const { dns } = server({
    udp: () => new Promise((_, reject) => setTimeout(() => reject(new Error("slow")), 2000)),
  });
  const slow = dns.handle(query("slow.example", "A"), true);
  const started = performance.now();
  for (let i = 0; i < 100; i++) {
    const r = decode((await dns.handle(query("hello.demo", "A", i), true))!);
    assertEquals(r.rcode, "NOERROR");
  }
  assert(performance.now() - started < 1000, "100 cluster answers while the upstream stalls");
  const servfail = decode((await slow)!);
  assertEquals(servfail.rcode, "SERVFAIL");
});

Deno.test("dns: 100,000 malformed packets get FORMERR or are dropped, never a crash", async () => {
  const { dns } = server();
  let state = 99;
  const random = () => (state = (Math.imul(state, 1103515245) + 12345) >>> 0);
  const seed = query("hello.demo", "A");
  let formerr = 0;
  for (let i = 0; i < 100_000; i++) {
    const packet = i % 2 === 0
      ? new Uint8Array(random() % 64)
      : seed.slice(0, random() % (seed.length + 1));
    for (let j = 0; j < packet.length; j++) {
      if (i % 2 === 0 || random() % 8 === 0) packet[j] = random() & 0xff;
    }
    if (packet.length >= 3) packet[2] &= 0x7f; // a query, not a response
    const reply = await dns.handle(packet, true);
    if (reply && (reply[3] & 0x0f) === 1) formerr++;
    if (reply) assertEquals([reply[0], reply[1]], [packet[0], packet[1]], "replies keep the id");
  }
  assert(formerr > 0);
});

Deno.test("dns: a response (QR set) is never answered, parseable or not — two servers must not answer each other", async () => {
  const { dns } = server();
  const response = query("hello.demo", "A");
  response[2] |= 0x80;
  assertEquals(await dns.handle(response, true), null);
  const garbage = new Uint8Array(40).fill(0xff); // QR set, and no DNS message
  assertEquals(await dns.handle(garbage, true), null);
  assertEquals(await dns.handle(new Uint8Array(11), true), null, "shorter than a header");
});

Deno.test("dns: a headless service's SRV names each ready pod, with the pod's port", async () => {
  const { dns, store } = server();
  store.applyService({
    metadata: { namespace: "demo", name: "db" },
    spec: { clusterIP: "None", ports: [{ name: "pg", port: 5432, protocol: "TCP" }] },
  });
  store.applyEndpointSlice({
    metadata: {
      namespace: "demo",
      name: "db-x1",
      labels: { "kubernetes.io/service-name": "db" },
    },
    addressType: "IPv4",
    ports: [{ name: "pg", port: 5432, protocol: "TCP" }],
    endpoints: [
      {
        addresses: ["10.244.0.7"],
        hostname: "db-0",
        conditions: { ready: true },
        targetRef: { kind: "Pod", namespace: "demo", name: "db-0" },
      },
      {
        addresses: ["10.244.0.8"],
        conditions: { ready: true },
        targetRef: { kind: "Pod", namespace: "demo", name: "db-1" },
      },
      {
        addresses: ["10.244.0.9"],
        conditions: { ready: false },
        targetRef: { kind: "Pod", namespace: "demo", name: "db-2" },
      },
    ],
  });
  const srv = decode((await dns.handle(query("_pg._tcp.db.demo.svc.cluster.local", "SRV"), true))!);
  const records = srv.answers!.map((a) => (a as { data: { port: number; target: string } }).data)
    .map((d) => `${d.port} ${d.target}`).sort();
  assertEquals(records, [
    "5432 10-244-0-8.demo.pod.cluster.local",
    "5432 db-0.db.demo.svc.cluster.local",
  ]);
});
