/**
 * DNS the packet loop forwards itself (core/net/packet_loop/dns_forwarder.ts), on real sockets
 * bound to the loopback device (ffi/linux/loop_sockets.ts) against resolvers on loopback: which
 * queries it takes, the answer's way back, forged replies (RFC 5452 §9.1), the tries across
 * resolvers, SERVFAIL when none answers, the bound on queries waiting, and a change of resolvers
 * or devices while queries wait.
 */
import { assert, assertEquals } from "../assert.ts";
import {
  DnsForwarder,
  type DnsForwarding,
  MAX_FORWARDED_QUERY,
  NO_ANSWER,
} from "../../core/net/packet_loop/dns_forwarder.ts";
import { LinuxLoopSockets } from "../../ffi/linux/loop_sockets.ts";
import { openLibc } from "../../ffi/linux/libc.ts";
import { parseIpv4Address } from "../../core/net/wire/ipv4.ts";
import type { UdpDatagram } from "../../core/net/stack_types.ts";

// SO_BINDTODEVICE needs CAP_NET_RAW: root, as k8stun runs.
const ignore = Deno.build.os !== "linux" || Deno.uid() !== 0;
const APP = parseIpv4Address("198.18.0.1");
const RESOLVER_IN_TUN = parseIpv4Address("10.77.0.2");
const encoder = new TextEncoder();

/** A query: id, RD, one question for `name` of `type` (class IN), optionally more bytes. */
function query(id: number, name: string, type = 1, flags = 0x01): Uint8Array {
  const labels = name.split(".").filter(Boolean).flatMap((label) => {
    const bytes = encoder.encode(label);
    return [bytes.length, ...bytes];
  });
  return new Uint8Array([
    id >> 8,
    id & 0xff,
    flags,
    0,
    0,
    1,
    0,
    0,
    0,
    0,
    0,
    0,
    ...labels,
    0,
    type >> 8,
    type & 0xff,
    0,
    1,
  ]);
}

/** The client's datagram to the resolver's address in the TUN. */
/** The datagram as the stack hands it over: its payload a copy of its own (StackHost.udp). */
function fromApp(payload: Uint8Array, srcPort = 40_000): UdpDatagram {
  return {
    srcAddress: APP,
    srcPort,
    dstAddress: RESOLVER_IN_TUN,
    dstPort: 53,
    payload: payload.slice(),
  };
}

/** The reply a resolver makes: the query with QR and RA set, and `rcode`. */
function answerTo(q: Uint8Array, rcode = 0): Uint8Array {
  const reply = q.slice();
  reply[2] |= 0x80;
  reply[3] = 0x80 | rcode;
  return reply;
}

/** A resolver on loopback: `respond` says what it sends back for each query it gets. */
function resolver(
  respond: (query: Uint8Array) => Uint8Array[] = (q) => [answerTo(q)],
) {
  const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const port = (socket.addr as Deno.NetAddr).port;
  const received: Uint8Array[] = [];
  (async () => {
    for await (const [datagram, from] of socket) {
      received.push(datagram);
      for (const reply of respond(datagram)) await socket.send(reply, from);
    }
  })().catch(() => {}); // closed
  const close = () => socket.close();
  return { port, received, close, [Symbol.dispose]: close };
}

const CLAIMS = {
  suffixes: ["cluster.local", "svc", "pod", "demo"],
  bareNames: false,
  everything: false,
};

function forwarding(ports: number[], overrides: Partial<DnsForwarding> = {}): DnsForwarding {
  return {
    servers: ports.map((port) => ({ address: 0x7f000001, port, device: "lo" })),
    timeoutMs: 5000,
    attempts: 2,
    maxInFlight: 64,
    claims: CLAIMS,
    ...overrides,
  };
}

function setUp() {
  const sockets = new LinuxLoopSockets(openLibc().symbols);
  const replies: UdpDatagram[] = [];
  const answered: [number, number][] = [];
  const faults: string[] = [];
  const forwarder = new DnsForwarder(
    sockets,
    (datagram) => replies.push({ ...datagram, payload: datagram.payload.slice() }),
    (rcode, micros) => answered.push([rcode, micros]),
    (kind, error) => faults.push(`${kind}: ${(error as Error).message}`),
  );
  /** Runs the loop's part (ready sockets, deadlines) until `done` or 3 s. */
  const pump = async (done: () => boolean) => {
    const until = performance.now() + 3000;
    while (!done() && performance.now() < until) {
      const now = performance.now();
      sockets.ready((fd) => forwarder.receive(fd, now));
      forwarder.expire(now);
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
  };
  return {
    sockets,
    forwarder,
    replies,
    answered,
    faults,
    pump,
    [Symbol.dispose]() {
      forwarder.closeAll();
      sockets.closeAll();
    },
  };
}

Deno.test({
  name:
    "dns forwarder: a name not the cluster's goes upstream with our id; the answer comes back with the client's, from the address it asked",
  ignore,
  async fn() {
    using t = setUp();
    using upstream = resolver();
    t.forwarder.configure(forwarding([upstream.port]), performance.now());
    const q = query(0x1234, "www.example.com");
    assert(t.forwarder.take(fromApp(q), performance.now()), "taken");
    await t.pump(() => t.replies.length > 0);
    assertEquals(t.replies.length, 1);
    const [reply] = t.replies;
    assertEquals(
      [reply.srcAddress, reply.srcPort, reply.dstAddress, reply.dstPort],
      [RESOLVER_IN_TUN, 53, APP, 40_000],
    );
    assertEquals(reply.payload, answerTo(q));
    assertEquals(upstream.received.length, 1);
    assertEquals(
      upstream.received[0].slice(2),
      q.slice(2),
      "the query leaves unchanged but for its id",
    );
    assertEquals(t.answered.length, 1);
    assertEquals(t.answered[0][0], 0);
    assertEquals(t.forwarder.waiting, 0);
  },
});

Deno.test({
  name:
    "dns forwarder: the cluster's names, PTR and anything but a plain query are left to the main thread",
  ignore,
  fn() {
    using t = setUp();
    const now = performance.now();
    assertEquals(
      t.forwarder.take(fromApp(query(1, "www.example.com")), now),
      false,
      "not configured",
    );
    t.forwarder.configure(forwarding([53_000]), now);
    const left: [string, Uint8Array][] = [
      ["a cluster short name", query(1, "hello.demo")],
      ["a name in the cluster domain", query(1, "hello.demo.svc.cluster.local")],
      ["a pod name", query(1, "10-1-2-3.demo.pod")],
      ["PTR", query(1, "7.0.18.198.in-addr.arpa", 12)],
      ["a response", answerTo(query(1, "www.example.com"))],
      ["another opcode (STATUS)", query(1, "www.example.com", 1, 0x10)],
      [
        "two questions",
        (() => {
          const q = query(1, "www.example.com");
          q[5] = 2;
          return q;
        })(),
      ],
      ["no question", query(1, "www.example.com").slice(0, 12).map((b, i) => i === 5 ? 0 : b)],
      ["a header cut short", query(1, "www.example.com").slice(0, 11)],
      ["a question cut short", query(1, "www.example.com").slice(0, 20)],
      [
        "an oversized query",
        new Uint8Array([...query(1, "www.example.com"), ...new Uint8Array(MAX_FORWARDED_QUERY)]),
      ],
    ];
    for (const [what, payload] of left) {
      assertEquals(t.forwarder.take(fromApp(payload), now), false, what);
    }
    assertEquals(t.forwarder.waiting, 0);
    assertEquals(
      t.forwarder.take(fromApp(query(1, "go.dev", 28)), now),
      true,
      "AAAA of a public name",
    );
  },
});

Deno.test({
  name:
    "dns forwarder: forged replies (another id, another question) are dropped and the real answer gets through",
  ignore,
  async fn() {
    using t = setUp();
    using upstream = resolver((q) => {
      const wrongId = answerTo(q);
      wrongId[0] ^= 0xff;
      const otherQuestion = answerTo(query((q[0] << 8) | q[1], "evil.example.com"));
      return [wrongId, otherQuestion, answerTo(q)];
    });
    t.forwarder.configure(forwarding([upstream.port]), performance.now());
    const q = query(7, "spoof.example.com");
    t.forwarder.take(fromApp(q), performance.now());
    await t.pump(() => t.replies.length > 0 && t.forwarder.dropped >= 2);
    assertEquals(t.replies.map((r) => r.payload), [answerTo(q)]);
    assertEquals(t.forwarder.dropped, 2);
  },
});

Deno.test({
  name:
    "dns forwarder: a silent resolver's turn passes after the timeout; with none answering the client gets SERVFAIL after every try",
  ignore,
  async fn() {
    using t = setUp();
    using silent = resolver(() => []);
    using answering = resolver();
    t.forwarder.configure(
      forwarding([silent.port, answering.port], { timeoutMs: 50, attempts: 1 }),
      performance.now(),
    );
    const q = query(9, "slow.example.com");
    t.forwarder.take(fromApp(q), performance.now());
    await t.pump(() => t.replies.length > 0);
    assertEquals(t.replies.map((r) => r.payload), [answerTo(q)]);
    assertEquals([silent.received.length, answering.received.length], [1, 1]);
    assert(t.answered[0][1] >= 50_000, `answered after ${t.answered[0][1]} µs`);

    t.replies.length = 0;
    t.forwarder.configure(
      forwarding([silent.port], { timeoutMs: 50, attempts: 2 }),
      performance.now(),
    );
    const started = performance.now();
    t.forwarder.take(fromApp(query(10, "never.example.com")), performance.now());
    await t.pump(() => t.replies.length > 0);
    assert(performance.now() - started >= 100, "it waited for both tries");
    assertEquals(silent.received.length, 3, "one try in the first round, two now");
    assertEquals(
      t.replies[0].payload,
      new Uint8Array([0, 10, 0x81, 0x82, 0, 0, 0, 0, 0, 0, 0, 0]),
    );
    assertEquals(t.answered.at(-1)![0], NO_ANSWER);
    assertEquals(t.forwarder.waiting, 0);
  },
});

Deno.test({
  name:
    "dns forwarder: at most maxInFlight queries wait; the oldest gives way with SERVFAIL at once",
  ignore,
  fn() {
    using t = setUp();
    using silent = resolver(() => []);
    t.forwarder.configure(forwarding([silent.port], { maxInFlight: 2 }), performance.now());
    for (let id = 1; id <= 3; id++) {
      t.forwarder.take(fromApp(query(id, `n${id}.blackhole.example.com`)), performance.now());
    }
    assertEquals(t.forwarder.waiting, 2);
    assertEquals(t.replies.map((r) => [r.payload[1], r.payload[3] & 0x0f]), [[1, 2]]);
  },
});

Deno.test({
  name:
    "dns forwarder: new resolvers or devices send the waiting queries again through them; null stops forwarding",
  ignore,
  async fn() {
    using t = setUp();
    using silent = resolver(() => []);
    using answering = resolver();
    t.forwarder.configure(forwarding([silent.port]), performance.now());
    const q = query(11, "moved.example.com");
    t.forwarder.take(fromApp(q), performance.now());
    // Only the claims change: the same sockets, nothing sent again.
    t.forwarder.configure({
      ...forwarding([silent.port]),
      claims: { ...CLAIMS, suffixes: ["x"] },
    }, performance.now());
    await t.pump(() => silent.received.length > 0);
    assertEquals(silent.received.length, 1);
    t.forwarder.configure(forwarding([answering.port]), performance.now());
    await t.pump(() => t.replies.length > 0);
    assertEquals(t.replies.map((r) => r.payload), [answerTo(q)]);

    t.forwarder.configure(null, performance.now());
    assertEquals(
      t.forwarder.take(fromApp(query(12, "www.example.com")), performance.now()),
      false,
    );
  },
});

Deno.test({
  name:
    "dns forwarder: a device that is gone fails the try, reports the fault and answers SERVFAIL instead of throwing",
  ignore,
  fn() {
    using t = setUp();
    t.forwarder.configure(
      { ...forwarding([53]), servers: [{ address: 0x7f000001, port: 53, device: "k8s-gone0" }] },
      performance.now(),
    );
    assert(t.forwarder.take(fromApp(query(13, "www.example.com")), performance.now()));
    assertEquals(t.replies.map((r) => r.payload[3] & 0x0f), [2]);
    assertEquals(t.answered.map(([rcode]) => rcode), [NO_ANSWER]);
    assert(t.faults.some((f) => f.includes("k8s-gone0")), t.faults.join("; "));
  },
});

Deno.test({
  name:
    "dns forwarder: a flood of unanswered names keeps the deadline queue near the queries waiting",
  ignore,
  fn() {
    using t = setUp();
    using silent = resolver(() => []);
    t.forwarder.configure(forwarding([silent.port], { maxInFlight: 100 }), performance.now());
    for (let id = 0; id < 20_000; id++) {
      const now = performance.now();
      t.forwarder.take(fromApp(query(id & 0xffff, `n${id}.blackhole.example.com`)), now);
      t.forwarder.expire(now);
    }
    assertEquals(t.forwarder.waiting, 100);
    assertEquals(t.replies.length, 19_900, "each query that gave way got SERVFAIL");
    assert(t.forwarder.deadlinesKept <= 1024 + 2 * 100, `${t.forwarder.deadlinesKept} kept`);
  },
});
