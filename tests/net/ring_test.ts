/** The shared record ring and the loop protocol's codec (core/net/packet_loop/ring.ts, protocol.ts). */
import { parseIpv4Address } from "../../core/net/wire/ipv4.ts";
import { assert, assertEquals, assertThrows } from "../assert.ts";
import {
  createRing,
  MAX_RECORD_PAYLOAD,
  RingReader,
  RingWriter,
} from "../../core/net/packet_loop/ring.ts";
import {
  type LoopEvent,
  type LoopOp,
  pushEvent,
  pushOp,
  readEvents,
  readOps,
} from "../../core/net/packet_loop/protocol.ts";

const CAPACITY = 4 * 1024 * 1024;

function bytes(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (i * 131 + seed) & 0xff;
  return out;
}

Deno.test("ring: records come out in order and byte-exact across many wrap-arounds", () => {
  const buffer = createRing(CAPACITY);
  const writer = new RingWriter(buffer);
  const reader = new RingReader(buffer);
  let nextWrite = 0;
  let nextRead = 0;
  const sizeOf = (i: number) => (i * 7919) % 70_000; // odd sizes, zero included
  // Producer and consumer interleave unevenly so the free space, and where records break off
  // before the end, vary; 3 000 records of ~35 KB pass 100 MB through a 4 MiB ring.
  while (nextRead < 3000) {
    const burst = 1 + (nextWrite % 13);
    for (let k = 0; k < burst && nextWrite < 3000; k++) {
      const size = sizeOf(nextWrite);
      const half = size >> 1;
      const payload = bytes(size, nextWrite);
      if (
        !writer.push(1 + (nextWrite % 5), nextWrite, size, [
          payload.subarray(0, half),
          payload.subarray(half),
        ])
      ) break;
      nextWrite++;
    }
    reader.drain((kind, a, b, payload) => {
      assertEquals([kind, a, b], [1 + (nextRead % 5), nextRead, sizeOf(nextRead)]);
      assert(payload.every((v, i) => v === ((i * 131 + nextRead) & 0xff)), `record ${nextRead}`);
      assertEquals(payload.length, sizeOf(nextRead));
      nextRead++;
    });
  }
  assertEquals(reader.pending, false);
});

Deno.test("ring: a full ring refuses a record without writing any of it, then takes it once drained", () => {
  const buffer = createRing(CAPACITY);
  const writer = new RingWriter(buffer);
  const reader = new RingReader(buffer);
  const big = bytes(MAX_RECORD_PAYLOAD, 1);
  let accepted = 0;
  while (writer.push(2, accepted, 0, [big])) accepted++;
  assertEquals(accepted, 15); // 16 slots of 256 KiB + header: the 16th does not fit
  let seen = 0;
  reader.drain((_kind, a) => assertEquals(a, seen++));
  assertEquals(seen, accepted);
  assert(writer.push(2, 99, 0, [big]));
  assertThrows(() => writer.push(2, 0, 0, [big, new Uint8Array(1)]), RangeError);
});

Deno.test("loop protocol: every operation and event survives its record", () => {
  const buffer = createRing(CAPACITY);
  const writer = new RingWriter(buffer);
  const reader = new RingReader(buffer);
  const datagram = {
    srcAddress: parseIpv4Address("10.0.0.7"),
    srcPort: 53,
    dstAddress: parseIpv4Address("198.18.0.1"),
    dstPort: 40_000,
    payload: bytes(300, 3),
  };
  const ops: LoopOp[] = [
    { op: "accept", id: 1 },
    { op: "refuse", id: 2 },
    { op: "send", id: 3, data: bytes(1000, 4) },
    { op: "consumed", id: 4, n: 65_536 },
    { op: "finish", id: 5 },
    { op: "abort", id: 0xfffffffe },
    { op: "udp", datagram },
    { op: "route", address: 0xc0a80001, add: true },
    { op: "route", address: 0xc0a80001, add: false },
    {
      op: "dns-forwarding",
      config: {
        servers: [{ address: 0x0a4d0002, port: 53, device: "wlan0" }],
        timeoutMs: 5000,
        attempts: 2,
        maxInFlight: 2048,
        claims: {
          suffixes: ["cluster.local", "svc", "pod", "demo"],
          bareNames: false,
          everything: false,
        },
      },
    },
    { op: "dns-forwarding", config: null },
  ];
  for (const op of ops) assert(pushOp(writer, op));
  const gotOps: LoopOp[] = [];
  readOps(reader, (op) => gotOps.push(structuredClone(op)));
  assertEquals(gotOps, ops);

  const events: LoopEvent[] = [
    {
      ev: "open",
      flow: {
        id: 9,
        srcAddress: parseIpv4Address("198.18.0.1"),
        srcPort: 51000,
        dstAddress: parseIpv4Address("198.18.3.4"),
        dstPort: 443,
      },
    },
    { ev: "data", id: 9, data: bytes(5000, 5) },
    { ev: "eof", id: 9 },
    { ev: "sent", id: 9, n: 123 },
    { ev: "closed", id: 9, why: "reset" },
    { ev: "udp", datagram },
    { ev: "dns-forwarded", rcode: 3, micros: 1234 },
    { ev: "dns-forwarded", rcode: 0xffff, micros: 10_000_000 },
  ];
  for (const event of events) assert(pushEvent(writer, event));
  const gotEvents: LoopEvent[] = [];
  readEvents(reader, (event) => gotEvents.push(structuredClone(event)));
  assertEquals(gotEvents, events);
});

Deno.test("ring: a visitor that throws consumes its record; the next drain goes on after it", () => {
  const buffer = createRing(CAPACITY);
  const writer = new RingWriter(buffer);
  const reader = new RingReader(buffer);
  for (let i = 1; i <= 3; i++) assert(writer.push(1, i, 0));
  assertThrows(() =>
    reader.drain((_kind, a) => {
      if (a === 2) throw new Error("bug");
    })
  );
  const rest: number[] = [];
  reader.drain((_kind, a) => rest.push(a));
  assertEquals(rest, [3]);
});

Deno.test("ring: views kept across a drain stay valid until beforeFree, and their room frees only after it", () => {
  const buffer = createRing(CAPACITY);
  const writer = new RingWriter(buffer);
  const reader = new RingReader(buffer);
  const big = bytes(MAX_RECORD_PAYLOAD, 2);
  let records = 0;
  while (writer.push(1, records, 0, [big])) records++;
  const views: Uint8Array[] = [];
  let roomBeforeFree: boolean | undefined;
  reader.drain((_kind, _a, _b, payload) => views.push(payload), () => {
    // The producer still sees a full ring: what the consumer gathered cannot be overwritten.
    roomBeforeFree = writer.push(1, 99, 0, [big]);
    assert(views.every((view) => view.every((v, i) => v === ((i * 131 + 2) & 0xff))));
  });
  assertEquals(views.length, records);
  assertEquals(roomBeforeFree, false);
  assert(writer.push(1, 99, 0, [big]), "room once the drain returned");
});
