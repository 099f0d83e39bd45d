/**
 * The packet-loop Worker through its link (core/net/data_plane/loop_link.ts), with a socketpair as
 * its TUN (fake_tun.ts): what it does when something goes wrong — an answer longer than the MTU,
 * an operation that throws, a connection past our FIN, packets from another host, a stall.
 */
import { assert, assertEquals } from "../assert.ts";
import { openLibc } from "../../ffi/linux/libc.ts";
import { PacketLoopLink } from "../../core/net/data_plane/loop_link.ts";
import { NO_OFFLOAD } from "../../core/net/device/tun_device.ts";
import { LINUX_PACKET_IO, linuxTunHost } from "../../ffi/linux/tun_device.ts";
import type { LoopEvent, LoopTestFault } from "../../core/net/packet_loop/protocol.ts";
import type { FlowId } from "../../core/net/stack_types.ts";
import { parseIpv4, parseIpv4Address, PROTO_ICMP, PROTO_UDP } from "../../core/net/wire/ipv4.ts";
import { emitUdp } from "../../core/net/wire/udp.ts";
import { ACK, FIN, SYN } from "../../core/net/wire/tcp.ts";
import { APP, appSegment, parseOut, VIP } from "./packets.ts";
import { FakeTun, protocolOf } from "./fake_tun.ts";

const MTU = 1500;
/** The stand-in TUN is a Linux socketpair driven by glibc; macOS has utun_smoke_test.ts. */
const NOT_LINUX = Deno.build.os !== "linux";
const NEIGHBOUR = parseIpv4Address("10.77.0.2");

/** A loop on a fake TUN, and what it told the relay. */
async function startLoop(
  options: { localAddresses?: number[]; testFault?: LoopTestFault; acceptingMemoryMs?: number } =
    {},
) {
  const lib = openLibc();
  const tun = FakeTun.open(lib.symbols);
  const events: Exclude<LoopEvent, { ev: "data" }>[] = [];
  const data = new Map<FlowId, number>();
  const link = await PacketLoopLink.start(linuxTunHost(lib.symbols), {
    device: { module: LINUX_PACKET_IO, fd: tun.loopFd, mtu: MTU, offload: NO_OFFLOAD },
    network: { base: parseIpv4Address("198.18.0.0"), prefix: 16 },
    receiveBuffer: 64 * 1024,
    sendBuffer: 64 * 1024,
    idleTimeoutMs: 0,
    busyPollMs: 0,
    acceptingMemoryMs: options.acceptingMemoryMs ?? 0,
    localAddresses: options.localAddresses ?? [APP],
    udpPorts: [53],
    testFault: options.testFault,
  }, {
    event: (event) => events.push(structuredClone(event)),
    data: (id, bytes, fill) => {
      fill(new Uint8Array(bytes));
      data.set(id, (data.get(id) ?? 0) + bytes);
    },
  });
  let ended: string | undefined;
  link.ended.then((reason) => ended = reason);
  return {
    tun,
    link,
    events,
    data,
    get ended() {
      return ended;
    },
    /** Waits until `check` holds, looking every `everyMs` (the loop answers in milliseconds). */
    async until(check: () => boolean, what: string, ms = 5000, everyMs = 5) {
      const deadline = Date.now() + ms;
      while (!check()) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await new Promise((resolve) => setTimeout(resolve, everyMs));
      }
    },
    async [Symbol.asyncDispose]() {
      await link.close();
      tun[Symbol.dispose]();
      lib.close();
    },
  };
}

type Loop = Awaited<ReturnType<typeof startLoop>>;

/** Sends a SYN from `src`:`port` and waits for the loop to announce the flow; its id. */
async function open(loop: Loop, port: number, src = APP): Promise<FlowId> {
  loop.tun.write(appSegment({ src, srcPort: port, flags: SYN, seq: 1000, mss: 1460 }));
  await loop.until(
    () => loop.events.some((e) => e.ev === "open" && e.flow.srcPort === port),
    `the flow from port ${port}`,
  );
  const event = loop.events.find((e) => e.ev === "open" && e.flow.srcPort === port);
  return event!.ev === "open" ? event!.flow.id : 0;
}

/** Opens and completes the handshake; returns the flow and the loop's next sequence number. */
async function establish(loop: Loop, port: number) {
  const id = await open(loop, port);
  loop.link.send({ op: "accept", id });
  const synAck = parseOut((await loop.tun.read(5000, (p) => protocolOf(p) === 6))!);
  assertEquals(synAck.flags, SYN | ACK);
  const snd = (synAck.seq + 1) >>> 0;
  loop.tun.write(appSegment({ srcPort: port, flags: ACK, seq: 1001, ack: snd, window: 65535 }));
  return { id, snd };
}

Deno.test({
  name:
    "packet loop: UDP to a port it does not serve is refused by ICMP port unreachable from the loop; DNS reaches the relay",
  ignore: NOT_LINUX,
}, async () => {
  await using loop = await startLoop();
  const out = new Uint8Array(256);
  const query = (port: number) =>
    out.slice(0, emitUdp(out, APP, VIP, 40000, port, new Uint8Array(12).fill(port & 0xff)));
  const refused = query(9999);
  loop.tun.write(refused);
  const icmp = (await loop.tun.read(5000, (p) => protocolOf(p) === PROTO_ICMP))!;
  assertEquals([icmp[20], icmp[21]], [3, 3], "port unreachable");
  assertEquals(icmp.subarray(28), refused, "quoting the datagram");
  loop.tun.write(query(53));
  await loop.until(
    () => loop.events.some((e) => e.ev === "udp" && e.datagram.dstPort === 53),
    "the DNS datagram",
  );
  assert(!loop.events.some((e) => e.ev === "udp" && e.datagram.dstPort === 9999));
});

Deno.test({
  name:
    "packet loop: at most 256 datagrams wait for a busy main thread — past that they are dropped and counted, never queued — and responses to port 53 are dropped before it",
  ignore: NOT_LINUX,
}, async () => {
  await using loop = await startLoop();
  const out = new Uint8Array(256);
  const message = (id: number, flags: number) => {
    const dns = new Uint8Array(12);
    dns.set([id >> 8, id & 0xff, flags, 0, 0, 1]);
    return out.slice(0, emitUdp(out, APP, VIP, 40000, 53, dns));
  };
  /** Writes without yielding (a full socketpair is retried): the main thread reads nothing. */
  const writeBusy = (packet: Uint8Array) => {
    for (const deadline = Date.now() + 2000;;) {
      try {
        return loop.tun.write(packet);
      } catch (error) {
        if (Date.now() > deadline) throw error;
      }
    }
  };
  for (let i = 0; i < 50; i++) writeBusy(message(i, 0x81)); // responses (QR): never answered
  for (let i = 0; i < 600; i++) writeBusy(message(i, 0x01)); // queries (RD)
  // The main thread stays busy while the loop takes them in.
  for (const until = Date.now() + 300; Date.now() < until;) { /* busy */ }
  await loop.until(() => loop.link.datagramDrops === 600 - 256, "the drops to be counted");
  await loop.until(() => loop.events.filter((e) => e.ev === "udp").length === 256, "the 256");
  const received = loop.events.flatMap((e) => e.ev === "udp" ? [e.datagram.payload] : []);
  assertEquals(received.map((payload) => (payload[0] << 8) | payload[1]), [...Array(256).keys()]);
  assert(received.every((payload) => (payload[2] & 0x80) === 0), "no response reached it");
  // Once read, new datagrams are taken again.
  loop.tun.write(message(1000, 0x01));
  await loop.until(() => loop.events.filter((e) => e.ev === "udp").length === 257, "one more");
  assertEquals(loop.link.datagramDrops, 344);
});

Deno.test({
  name:
    "packet loop: a UDP answer longer than the MTU arrives as IPv4 fragments that reassemble to it, and the loop goes on",
  ignore: NOT_LINUX,
}, async () => {
  await using loop = await startLoop();
  const payload = Uint8Array.from({ length: 4000 }, (_, i) => i & 0xff);
  loop.link.send({
    op: "udp",
    datagram: {
      srcAddress: VIP,
      srcPort: 53,
      dstAddress: APP,
      dstPort: 5353,
      payload,
    },
  });
  const fragments = await loop.tun.readAll(500);
  assertEquals(fragments.length, 3);
  const reassembled = new Uint8Array(8 + payload.length);
  for (const fragment of fragments) {
    assert(fragment.length <= MTU, `a fragment of ${fragment.length} bytes`);
    const ip = parseIpv4(fragment, fragment.length)!; // header checksum verified
    assertEquals(ip.protocol, PROTO_UDP);
    const offset = (((fragment[6] & 0x1f) << 8) | fragment[7]) * 8;
    reassembled.set(fragment.subarray(20), offset);
  }
  assertEquals((reassembled[4] << 8) | reassembled[5], 8 + payload.length, "UDP length");
  assertEquals(reassembled.subarray(8), payload);
  assertEquals(fragments.map((f) => f[6] & 0x20), [0x20, 0x20, 0], "MF on all but the last");

  // One that no IPv4 datagram can carry is a contained fault: counted, the loop serves on.
  loop.link.send({
    op: "udp",
    datagram: {
      ...{ srcAddress: VIP, srcPort: 53, dstAddress: APP },
      dstPort: 1,
      payload: new Uint8Array(70_000),
    },
  });
  await loop.until(() => loop.link.faults === 1, "the fault to be counted");
  await open(loop, 40001);
  assertEquals(loop.ended, undefined);
});

Deno.test({
  name:
    "packet loop: a connection whose FIN the app acknowledged takes more data and its 'consumed' without ending the loop",
  ignore: NOT_LINUX,
}, async () => {
  await using loop = await startLoop();
  const { id, snd } = await establish(loop, 40002);
  // The upload: 20 segments, delivered to the relay, not yet consumed.
  let seq = 1001;
  for (let i = 0; i < 20; i++) {
    const payload = new Uint8Array(1400).fill(i);
    loop.tun.write(appSegment({ srcPort: 40002, flags: ACK, seq, ack: snd, payload }));
    seq += payload.length;
  }
  await loop.until(() => loop.data.get(id) === 28_000, "the upload at the relay");
  // The dialer's side ends first: FIN, which the app acknowledges (FIN-WAIT-2) …
  loop.link.send({ op: "finish", id });
  const fin = parseOut((await loop.tun.read(5000, (p) => (parseOut(p).flags & FIN) !== 0))!);
  const finAcked = (fin.seq + 1) >>> 0;
  loop.tun.write(appSegment({ srcPort: 40002, flags: ACK, seq, ack: finAcked }));
  // … while the end of the upload still arrives, and the relay reports it written.
  loop.tun.write(
    appSegment({ srcPort: 40002, flags: ACK, seq, ack: finAcked, payload: new Uint8Array(1000) }),
  );
  await loop.until(() => loop.data.get(id) === 29_000, "the end of the upload at the relay");
  loop.link.send({ op: "consumed", id, n: 29_000 });
  const ack = await loop.tun.read(2000, (p) => parseOut(p).ack === seq + 1000);
  assert(ack !== undefined, "the end of the upload is acknowledged");
  await open(loop, 40003); // and the loop still serves new connections
  assertEquals(loop.ended, undefined);
});

Deno.test({
  name:
    "packet loop: packets from an address that is not this host's are dropped and counted, until the host has that address",
  ignore: NOT_LINUX,
}, async () => {
  await using loop = await startLoop({ localAddresses: [APP] });
  loop.tun.write(appSegment({ src: NEIGHBOUR, srcPort: 40004, flags: SYN, seq: 1000 }));
  await loop.until(() => loop.link.foreignDrops === 1, "the drop to be counted");
  await open(loop, 40005); // the host's own traffic passes
  assertEquals(loop.events.filter((e) => e.ev === "open").length, 1);
  assertEquals(await loop.tun.read(200), undefined, "nothing answers the neighbour");

  loop.link.send({ op: "local-addresses", addresses: [APP, NEIGHBOUR] });
  await open(loop, 40006, NEIGHBOUR);
  assertEquals(loop.link.foreignDrops, 1);
});

Deno.test({
  name: "packet loop: the heartbeat moves while the loop idles and stops when it spins",
  ignore: NOT_LINUX,
}, async () => {
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  await using loop = await startLoop({ testFault: { kind: "spin", afterMs: 3000 } });
  const started = Date.now(); // the loop's clock started just before it said ready
  const first = loop.link.heartbeat;
  // Idle, the loop turns at least once a second (its poll times out).
  await sleep(2200);
  assert(loop.link.heartbeat >= first + 2, `${loop.link.heartbeat - first} turns in 2.2 s`);
  // Spinning from 3 s on (after at most one more poll of ≤ 1 s): the heartbeat stands still.
  await sleep(started + 4300 - Date.now());
  const spinning = loop.link.heartbeat;
  await sleep(1200);
  assertEquals(loop.link.heartbeat, spinning);
  assertEquals(loop.ended, undefined, "a stall is not a failure: only the watchdog sees it");
});

Deno.test(
  { name: "packet loop: a loop that fails says why, once", ignore: NOT_LINUX },
  async () => {
    await using loop = await startLoop({ testFault: { kind: "throw", afterMs: 100 } });
    await loop.until(() => loop.ended !== undefined, "the failure");
    assertEquals(loop.ended, "packet loop failed: test fault injected into the packet loop");
    assertEquals(loop.link.send({ op: "finish", id: 1 }), true, "operations go nowhere");
  },
);

Deno.test({
  name:
    "packet loop: once a VIP and port accepted a connection, the next SYN there is answered before the relay accepts (docs/tcp.md §3.1)",
  ignore: NOT_LINUX,
}, async () => {
  await using loop = await startLoop({ acceptingMemoryMs: 30_000 });
  await establish(loop, 41000);
  await loop.tun.readAll(50); // the handshake's leftovers
  loop.tun.write(appSegment({ srcPort: 41001, flags: SYN, seq: 1000, mss: 1460 }));
  const answer = parseOut((await loop.tun.read(5000, (p) => protocolOf(p) === 6))!);
  assertEquals(answer.flags, SYN | ACK, "no accept was sent for this flow");
  assertEquals(answer.dstPort, 41001);
  await loop.until(
    () => loop.events.some((e) => e.ev === "open" && e.flow.srcPort === 41001),
    "the flow to be announced for its dial all the same",
  );
});

Deno.test({
  name:
    "packet loop: the sockets of a loop that had to be terminated (it stopped taking turns) are closed by its link",
  ignore: NOT_LINUX,
}, async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  try {
    await using loop = await startLoop({ testFault: { kind: "hang", afterMs: 500 } });
    const id = await open(loop, 42000);
    loop.link.send({ op: "connect", id, dial: { address: 0x7f000001, port } });
    const pod = await listener.accept();
    await loop.until(() => loop.events.some((e) => e.ev === "connected"), "the connect");
    // Past the fault's time, any operation makes the loop take a turn, and it hangs there.
    await new Promise((resolve) => setTimeout(resolve, 600));
    loop.link.send({ op: "route", address: VIP, add: true });
    let beat = -1;
    await loop.until(
      () => {
        const stuck = loop.link.heartbeat === beat;
        beat = loop.link.heartbeat;
        return stuck;
      },
      "the loop to hang",
      5000,
      200,
    );
    await loop.link.close(); // it does not stop within a second: terminated
    // The pod sees its connection end: nothing holds the socket any more.
    const ended = await Promise.race([
      pod.read(new Uint8Array(16)).then((n) => n === null ? "closed" : "data", () => "reset"),
      new Promise((resolve) => setTimeout(() => resolve("still open after 3 s"), 3000)),
    ]);
    assertEquals(ended, "closed");
    pod.close();
  } finally {
    listener.close();
  }
});
