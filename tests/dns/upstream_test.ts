/**
 * Forwarding upstream: which datagrams answer a query (RFC 5452 §9.1), random ids, a fixed set
 * of sockets, deadlines and the cap on queries in flight — over loopback, with plain sockets and
 * with the device-bound ones tun_route uses.
 */
import dnsPacket from "dns-packet";
import { Buffer } from "node:buffer";
import { assert, assertEquals, assertRejects } from "../assert.ts";
import { InflightQueries, questionKey } from "../../core/dns/inflight.ts";
import { UdpExchange } from "../../core/dns/udp_exchange.ts";
import { type TransportFactory, UpstreamResolver } from "../../core/dns/upstream.ts";
import { boundTransport } from "../../plugins/dns/bound_upstream.ts";
import { systemSocketTransport } from "../../plugins/dns/socket_upstream.ts";

function query(name: string, type = "A", id = 42): Uint8Array {
  return new Uint8Array(dnsPacket.encode({
    type: "query",
    id,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type: type as "A", name }],
  }));
}

function reply(id: number, name: string, address: string, type = "A"): Uint8Array {
  return new Uint8Array(dnsPacket.encode({
    type: "response",
    id,
    flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE,
    questions: [{ type: type as "A", name }],
    answers: [{ type: "A", name, ttl: 60, data: address }],
  }));
}

function answer(bytes: Uint8Array): { id: number; address: string } {
  const packet = dnsPacket.decode(Buffer.from(bytes));
  return { id: packet.id!, address: (packet.answers![0] as { data: string }).data };
}

Deno.test("upstream: a question matches whatever the case of its name, never another type or name", () => {
  const key = questionKey(query("www.Example.COM"));
  assert(key !== undefined);
  assertEquals(questionKey(reply(1, "WWW.example.com", "192.0.2.1")), key);
  assert(questionKey(query("www.example.com", "AAAA")) !== key);
  assert(questionKey(query("www.example.co")) !== key);
  assert(questionKey(query("www.example.com.evil")) !== key);
  const looping = query("a.example");
  looping.set([0xc0, 12], 12); // a name that points at itself
  assertEquals(questionKey(looping), undefined);
  const two = query("a.example");
  two[5] = 2; // RFC 9619: at most one question
  assertEquals(questionKey(two), undefined);
  assertEquals(questionKey(query("a.example").subarray(0, 20)), undefined, "cut short");
});

Deno.test("upstream: in-flight queries get distinct random ids; only a response on the same socket, with that id and question, matches", () => {
  const ids = [7, 7, 7, 9, 11];
  const table = new InflightQueries<string>(4, () => ids.shift()!);
  const first = table.add(query("a.example"), 0, "a")!;
  const second = table.add(query("b.example"), 1, "b")!;
  assertEquals([first, second], [7, 9], "an id in use is drawn again");
  assertEquals(table.match(1, reply(first, "a.example", "192.0.2.1")), undefined, "other socket");
  assertEquals(table.match(0, reply(first, "b.example", "192.0.2.1")), undefined, "other name");
  assertEquals(table.match(0, reply(first ^ 1, "a.example", "192.0.2.1")), undefined, "other id");
  assertEquals(table.match(0, query("a.example", "A", first)), undefined, "a query, not a reply");
  assertEquals(table.match(0, new Uint8Array(5)), undefined, "garbage");
  assertEquals(table.dropped, 5);
  assertEquals(table.match(0, reply(first, "A.EXAMPLE", "192.0.2.1")), "a");
  assertEquals(table.match(0, reply(first, "a.example", "192.0.2.1")), undefined, "answered once");
  assertEquals(table.size, 1);
});

/**
 * A loopback upstream that answers every query for `name` after first sending four forgeries:
 * from another address, from another port, with another id, and for another question.
 */
function spoofingUpstream(name: string, real: string) {
  const server = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const otherPort = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const otherAddress = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.2", port: 0 });
  const queries: Uint8Array[] = [];
  const served = (async () => {
    for await (const [bytes, from] of server) {
      const q = bytes.slice();
      queries.push(q);
      const id = (q[0] << 8) | q[1];
      const asked = dnsPacket.decode(Buffer.from(q)).questions![0].name;
      if (asked !== name) continue; // never answered
      await otherAddress.send(reply(id, name, "203.0.113.66"), from);
      await otherPort.send(reply(id, name, "203.0.113.67"), from);
      await server.send(reply(id ^ 0x5a5a, name, "203.0.113.68"), from);
      await server.send(reply(id, `x${name}`, "203.0.113.69"), from);
      await server.send(reply(id, name, "203.0.113.70", "AAAA"), from);
      await new Promise((resolve) => setTimeout(resolve, 50));
      await server.send(reply(id, name, real), from);
    }
  })().catch(() => {});
  return {
    address: `127.0.0.1:${(server.addr as Deno.NetAddr).port}`,
    queries,
    async close() {
      for (const socket of [server, otherPort, otherAddress]) socket.close();
      await served;
    },
  };
}

/** Descriptors this process has open. */
function openFds(): number {
  return [...Deno.readDirSync("/proc/self/fd")].length;
}

const transports: [string, TransportFactory | undefined, boolean][] = [
  ["plain sockets", undefined, false],
  ["connected libc sockets", systemSocketTransport, Deno.build.os !== "linux"],
  [
    "sockets bound to a device",
    (server, capacity) => boundTransport(server, "lo", capacity),
    Deno.uid() !== 0, // SO_BINDTODEVICE needs CAP_NET_RAW
  ],
];

for (const [kind, factory, ignore] of transports) {
  Deno.test({
    name:
      `upstream over ${kind}: forged replies are dropped and the real answer comes through, with the client's id`,
    ignore,
    async fn() {
      const upstream = spoofingUpstream("www.example.test", "192.0.2.7");
      const resolver = new UpstreamResolver([upstream.address], factory);
      try {
        const got = answer(await resolver.forward(query("www.example.test", "A", 4242)));
        assertEquals(got, { id: 4242, address: "192.0.2.7" });
      } finally {
        await resolver.close();
        await upstream.close();
      }
    },
  });

  Deno.test({
    name:
      `upstream over ${kind}: queries share a few sockets with random ids, have a deadline, and past the cap the oldest gives way`,
    ignore,
    async fn() {
      const upstream = spoofingUpstream("www.example.test", "192.0.2.7");
      const resolver = new UpstreamResolver([upstream.address], factory, {
        maxInFlight: 64,
        timeoutMs: 1500,
        attempts: 1,
      });
      try {
        const before = openFds();
        const silent = Array.from(
          { length: 200 },
          (_, i) =>
            resolver.forward(query(`silent-${i}.example.test`, "A", 1)).then(
              () => "answered",
              (error: Error) => error.message,
            ),
        );
        const real = resolver.forward(query("www.example.test", "A", 77));
        assertEquals(answer(await real).address, "192.0.2.7", "answered amid the flood");
        assert(openFds() - before <= 4, `descriptors: ${openFds() - before} more`);
        const outcomes = await Promise.all(silent);
        assertEquals(outcomes.filter((o) => /gave way/.test(o)).length, 137);
        assertEquals(outcomes.filter((o) => /no answer within 1500 ms/.test(o)).length, 63);
        assertEquals(resolver.inFlight, 0);
        const ids = new Set(upstream.queries.map((q) => (q[0] << 8) | q[1]));
        assert(ids.size >= upstream.queries.length - 2, "the clients' id 1 was replaced");
      } finally {
        await resolver.close();
        await upstream.close();
      }
    },
  });
}

Deno.test("upstream: a query with two questions is refused, and close fails what is in flight", async () => {
  const resolver = new UpstreamResolver(["127.0.0.1:9"], undefined, { timeoutMs: 60_000 });
  const pending = resolver.forward(query("a.example"));
  await new Promise((resolve) => setTimeout(resolve, 50));
  await resolver.close();
  await assertRejects(() => pending);
  const twoQuestions = query("a.example");
  twoQuestions[5] = 2;
  const other = new UpstreamResolver(["127.0.0.1:9"]);
  await assertRejects(() => other.forward(twoQuestions));
  await other.close();
});

Deno.test("upstream: a reply waiting unread in a socket when its deadline fires is taken in and answers the query; the sockets are read once for a batch of deadlines", async () => {
  /** A socket whose replies wait until they are taken in (this thread was busy meanwhile). */
  const waiting: Uint8Array[] = [];
  let takes = 0;
  const exchange = (readable: boolean) =>
    new UdpExchange((receive) => ({
      send(datagram) {
        const sent = dnsPacket.decode(Buffer.from(datagram));
        waiting.push(reply(sent.id!, sent.questions![0].name, "10.0.0.7"));
      },
      ...(readable
        ? {
          takeWaiting() {
            takes++;
            for (const datagram of waiting.splice(0)) receive(datagram);
          },
        }
        : {}),
      close() {},
    }), { capacity: 64, sockets: 1 });

  const reading = exchange(true);
  const answers = await Promise.all(
    ["a.example", "b.example", "c.example"].map((name, i) =>
      reading.exchange(query(name, "A", 100 + i), 30)
    ),
  );
  assertEquals(answers.map(answer), [100, 101, 102].map((id) => ({ id, address: "10.0.0.7" })));
  assertEquals(takes, 1, "three deadlines due together read the sockets once");
  assertEquals(reading.inFlight, 0);

  // A socket that cannot be read synchronously: the deadline fails the query, as before.
  waiting.length = 0;
  const blind = exchange(false);
  await assertRejects(
    () => blind.exchange(query("d.example"), 30),
    Error,
    "no answer within 30 ms",
  );
  await Promise.all([reading.close(), blind.close()]);
});
