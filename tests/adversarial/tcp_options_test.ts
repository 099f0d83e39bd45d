/**
 * Hostile TCP headers against the stack: thousands of SYNs with random and malformed options,
 * and segments with random lengths, offsets and fields into a live connection. Every stack call
 * must return within a budget of emitted packets (counted, not timed: a loop that keeps sending
 * segments trips it), nothing may throw inside the stack, and a well-behaved connection must
 * still work afterwards. Then the same in a running `k8stun demo`: a raw connection announcing
 * MSS 0 gets its response in small segments while curl keeps working.
 */
import { assert, assertEquals } from "../assert.ts";
import { formatIpv4 } from "../../core/net/wire/ipv4.ts";
import { ACK, FIN, RST, SYN, type TcpRepr } from "../../core/net/wire/tcp.ts";
import { APP, appSegment, establishedStack, parseOut, testStack, VIP } from "../net/packets.ts";
import { readTcp, TcpFlag, TcpOption, tcpPacket } from "./hostile_packets.ts";
import { labTest } from "../lab/lab.ts";
import { DEMO_RESOLV, startDemo, vipOf } from "./harness.ts";
import { RawIpv4Socket } from "./raw_socket.ts";

/** Packets one stack call may emit; far above what any legitimate call sends here. */
const BUDGET = 5_000;
const IP = { src: formatIpv4(APP), dst: formatIpv4(VIP) };

type TestStack = ReturnType<typeof testStack>;

/** A deterministic generator (an LCG), so a failure reproduces. */
function random(seed: number) {
  let state = seed >>> 0;
  const next = () => (state = (Math.imul(state, 1664525) + 1013904223) >>> 0);
  return {
    below: (n: number) => next() % n,
    pick: <T>(items: readonly T[]): T => items[next() % items.length],
  };
}
type Random = ReturnType<typeof random>;

/** Option bytes no sane kernel sends: lengths of 0, 1 or past the end, odd SACKs, MSS 0. */
function hostileOptions(r: Random): Uint8Array {
  const bytes: number[] = [];
  const count = r.below(8);
  for (let i = 0; i < count; i++) {
    bytes.push(
      ...r.pick([
        () => TcpOption.mss(r.pick([0, 1, 2, 40, 87, 88, 536, 1460, 9000, 65535, r.below(65536)])),
        () => TcpOption.windowScale(r.pick([0, 7, 14, 15, 200, 255])),
        () => TcpOption.sackPermitted(),
        () => [4, r.below(4)], // SACK permitted of a wrong length
        () => [5, r.pick([0, 1, 3, 7, 10, 255])], // SACK blocks of impossible sizes
        () => [8, 10, 1, 2, 3, 4, 5, 6, 7, 8], // timestamps
        () => [r.below(256), r.pick([0, 1, 2, 40, 255])], // unknown kind, hostile length
        () => TcpOption.nop(),
        () => [0], // end of list, with more after it
      ])(),
    );
  }
  return new Uint8Array(bytes.slice(0, 40));
}

/** Runs a stack call with a budget of emitted packets; a runaway fails the test here. */
function bounded(t: TestStack, what: string, call: () => void): void {
  t.budget(BUDGET);
  call();
  assert(!t.ranAway(), `${what}: the stack emitted more than ${BUDGET} packets in one call`);
  t.sent.length = 0;
}

/**
 * The app side of a connection: completes the handshake, then ACKs what it is sent. `answered`:
 * the SYN-ACK the SYN itself drew (a destination that accepted lately, docs/tcp.md §3.1).
 */
function driveConnection(
  t: TestStack,
  r: Random,
  port: number,
  isn: number,
  now: number,
  answered: TcpRepr | undefined,
): number {
  const flow = t.opened.shift()!;
  if (r.below(4) === 0) {
    bounded(t, "refuse", () => t.stack.refuse(flow.id, now));
    return now;
  }
  t.budget(BUDGET);
  t.stack.accept(flow.id, now);
  const synAck = answered ?? t.sent.map((p) => parseOut(p)).find((s) => s.flags === (SYN | ACK));
  assert(synAck, "the SYN or the accept is answered with a SYN-ACK");
  let una = (synAck.seq + 1) >>> 0;
  const window = () => r.pick([0, 1, 2, 88, 1024, 65535, r.below(65536)]);
  const ack = (at: number) =>
    t.stack.input(
      appSegment({ srcPort: port, flags: ACK, seq: isn + 1, ack: una, window: window() }),
      at,
    );
  bounded(t, "final ACK", () => ack(++now));
  bounded(t, "send", () => t.stack.send(flow.id, new Uint8Array(4096 + r.below(8192)), ++now));
  for (let round = 0; round < 4; round++) {
    t.budget(BUDGET);
    t.stack.poll(now += 250);
    for (const segment of t.sent.map((p) => parseOut(p))) {
      if (segment.payloadLength > 0) una = (segment.seq + segment.payloadLength) >>> 0;
    }
    assert(!t.ranAway(), "poll: the stack emitted more than its budget");
    t.sent.length = 0;
    bounded(t, "ACK", () => ack(++now));
  }
  bounded(t, "abort", () => t.stack.abort(flow.id, ++now));
  return now;
}

/** Checks that a fresh, well-behaved connection exchanges a request and a response. */
function assertServes(t: TestStack, port: number, now: number): void {
  t.sent.length = 0;
  t.opened.length = 0;
  t.budget(Infinity);
  t.stack.input(
    appSegment({ srcPort: port, flags: SYN, seq: 5000, mss: 1460, windowScale: 7 }),
    now,
  );
  assertEquals(t.opened.length, 1, "a clean SYN still opens a flow");
  const id = t.opened[0].id;
  t.stack.accept(id, now);
  const synAck = parseOut(t.sent.at(-1)!);
  const request = new TextEncoder().encode("GET / HTTP/1.1\r\n\r\n");
  t.stack.input(
    appSegment({ srcPort: port, flags: ACK, seq: 5001, ack: synAck.seq + 1, payload: request }),
    now + 1,
  );
  assertEquals(t.data.get(id)?.[0], request, "the request is delivered");
  const response = new Uint8Array(3000).map((_, i) => i & 0xff);
  assertEquals(t.stack.send(id, response, now + 2), response.length);
  t.stack.poll(now + 3);
  const received = t.sent.map((p) => parseOut(p))
    .filter((s) => s.dstPort === port && s.payloadLength > 0)
    .flatMap((s) => [...s.payload]);
  assertEquals(new Uint8Array(received), response, "the response comes out whole");
}

Deno.test("tcp options: 3,000 SYNs with hostile options each get a bounded answer, and a clean connection works after", () => {
  const r = random(0x5eed);
  const t = testStack();
  let now = 0;
  for (let i = 0; i < 3_000; i++) {
    const port = 10_000 + i;
    const isn = r.below(2 ** 32);
    const flags = r.pick([SYN, SYN, SYN, SYN, SYN | FIN, SYN | RST, SYN | ACK, SYN | TcpFlag.URG]);
    const options = hostileOptions(r);
    const packet = tcpPacket(IP, {
      srcPort: port,
      dstPort: 80,
      seq: isn,
      flags,
      window: r.below(65536),
      urgent: r.below(65536),
      options,
      dataOffset: r.below(6) === 0 ? r.below(16) : undefined,
      payload: new Uint8Array(r.pick([0, 0, 1, 100])),
    });
    t.budget(BUDGET);
    t.stack.input(packet, ++now);
    assert(!t.ranAway(), `SYN ${[...options]}: more than ${BUDGET} packets`);
    const answered = t.sent.map((p) => parseOut(p)).find((s) => s.flags === (SYN | ACK));
    t.sent.length = 0;
    while (t.opened.length > 0) now = driveConnection(t, r, port, isn, now, answered);
  }
  assertEquals(t.stack.stats.faults, 0, "no input threw inside the stack");
  for (now += 1000; now < 4 * 3_600_000; now += 60_000) t.stack.poll(now);
  assertEquals(t.stack.flowCount(), 0, "every connection ended");
  assertServes(t, 60_000, now);
});

Deno.test("tcp segments: 20,000 segments with hostile lengths and fields into a live connection stay bounded", () => {
  const r = random(0xbad5e9);
  const t = establishedStack({ window: 512 });
  const ipMutations = [
    () => ({}),
    () => ({ ihl: r.pick([0, 4, 6, 15]) }),
    () => ({ totalLength: r.pick([0, 20, 39, 41, 65535]) }),
    () => ({ flagsAndFragment: r.pick([0x2000, 0x0001, 0x3fff]) }),
  ];
  let now = 10;
  t.stack.send(t.id, new Uint8Array(50_000), now);
  for (let i = 0; i < 20_000; i++) {
    const near = (base: number) =>
      r.pick([
        base,
        (base + r.below(70_000)) >>> 0,
        (base - r.below(70_000)) >>> 0,
        r.below(2 ** 32),
      ]);
    const packet = tcpPacket({ ...IP, ...(r.below(2) ? {} : r.pick(ipMutations)()) }, {
      srcPort: 40000,
      dstPort: 80,
      seq: near(1001),
      ack: near(t.una),
      flags: r.pick([ACK, ACK, ACK | TcpFlag.PSH, ACK | FIN, ACK | TcpFlag.URG, SYN, RST, 0]),
      window: r.pick([0, 1, 512, 65535, r.below(65536)]),
      urgent: r.below(65536),
      options: r.below(4) === 0 ? hostileOptions(r) : undefined,
      dataOffset: r.below(8) === 0 ? r.below(16) : undefined,
      payload: new Uint8Array(r.pick([0, 0, 1, 536, 1460, 9000, 70_000])),
    });
    bounded(t, `segment ${i}`, () => t.stack.input(packet, now));
    if (i % 50 === 0) bounded(t, "poll", () => t.stack.poll(now += 100));
    if (i % 500 === 0) bounded(t, "send", () => t.stack.send(t.id, new Uint8Array(10_000), now));
  }
  assertEquals(t.stack.stats.faults, 0, "no input threw inside the stack");
  assertServes(t, 41_000, now + 1);
});

/** The lab's own address on k8stun's TUN: raw packets from it are answered back into the lab. */
const LAB_ADDRESS = "198.18.0.1";
const RAW_PORT = 45555;

labTest(
  "tcp options: a raw connection announcing MSS 0 gets its response, and curl still works",
  async (lab) => {
    const k8stun = await startDemo(lab);
    const vip = await vipOf(lab, "hello.demo");
    // The lab's kernel has no socket for the raw connection and would answer k8stun with RST.
    // Its RSTs are routed by source port, and raw sends by none: blackhole only the former.
    const rule = await lab.sh(`ip rule add pref 90 ipproto tcp sport ${RAW_PORT} blackhole`);
    assertEquals(rule.code, 0, rule.stderr);
    using raw = RawIpv4Socket.open(lab.name);
    const fromVip = (packet: Uint8Array) => {
      const seen = readTcp(packet);
      return seen?.src === vip && seen.dstPort === RAW_PORT;
    };
    const send = (fields: { seq: number; ack?: number; flags: number; payload?: Uint8Array }) =>
      raw.send(
        tcpPacket({ src: LAB_ADDRESS, dst: vip }, {
          srcPort: RAW_PORT,
          dstPort: 80,
          window: 65535,
          ...fields,
          options: fields.flags === SYN ? new Uint8Array(TcpOption.mss(0)) : undefined,
        }),
      );
    send({ seq: 7777, flags: SYN });
    const synAck = readTcp((await raw.receive(fromVip, 10_000))!);
    assert(synAck && synAck.flags === (SYN | ACK), "k8stun answers the MSS-0 SYN");
    const request = new TextEncoder().encode(
      "GET / HTTP/1.1\r\nHost: hello.demo\r\nConnection: close\r\n\r\n",
    );
    send({ seq: 7778, ack: (synAck.seq + 1) >>> 0, flags: ACK | TcpFlag.PSH, payload: request });
    // (With TUN offload the lab's kernel delivers k8stun's segments to the raw socket uncut.)
    let response = "";
    const deadline = Date.now() + 10_000;
    while (!response.includes("hello from") && Date.now() < deadline) {
      const packet = await raw.receive((p) => fromVip(p) && readTcp(p)!.payloadLength > 0, 1000);
      if (packet) response += new TextDecoder().decode(payloadOf(packet));
    }
    for (let i = 0; i < 3; i++) {
      const curl = await lab.run("curl", ["-sS", "-m", "5", "http://hello.demo/"]);
      assertEquals(curl.code, 0, `curl ${i + 1} after the MSS-0 connection: ${curl.stderr}`);
      assert(curl.stdout.startsWith("hello from"), curl.stdout);
    }
    assert(response.includes("hello from"), `the response reaches the raw connection: ${response}`);
    assertEquals(k8stun.child.pid > 0 && await isRunning(k8stun.pid), true, "k8stun is running");
  },
  { resolvConf: DEMO_RESOLV },
);

/** The TCP payload of an IPv4 packet. */
function payloadOf(packet: Uint8Array): Uint8Array {
  const ipHeader = (packet[0] & 0xf) * 4;
  const total = (packet[2] << 8) | packet[3];
  return packet.subarray(ipHeader + (packet[ipHeader + 12] >> 4) * 4, total);
}

/** Whether process `pid` still exists. */
async function isRunning(pid: number): Promise<boolean> {
  try {
    await Deno.stat(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}
