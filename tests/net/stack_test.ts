import { assert, assertEquals } from "../assert.ts";
import { ACK, FIN, RST, SYN } from "../../core/net/wire/tcp.ts";
import { finish, sum } from "../../core/net/wire/checksum.ts";
import { appSegment, establishedStack, parseOut, testStack } from "./packets.ts";

/** Opens a connection through the handshake; returns the stack and our ISN. */
const established = (receiveBuffer?: number) => establishedStack({ receiveBuffer });

Deno.test("stack: checksum of the RFC 1071 example words folds to the known value", () => {
  const bytes = new Uint8Array([0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]);
  assertEquals((~finish(sum(bytes, 0, 8))) & 0xffff, 0xddf2);
});

Deno.test("stack: a SYN waits for the dial; accept sends SYN-ACK with MSS and window scale (docs/tcp.md §2.2, §2.3, §3.1)", () => {
  const t = testStack();
  t.stack.input(appSegment({ flags: SYN, seq: 1000, mss: 1460, windowScale: 7 }), 0);
  assertEquals(t.opened.length, 1);
  assertEquals(t.sent.length, 0, "nothing is sent before the dial decides");
  t.stack.accept(t.opened[0].id, 0);
  const synAck = parseOut(t.sent[0]);
  assertEquals(synAck.flags, SYN | ACK);
  assertEquals(synAck.ack, 1001);
  assertEquals(synAck.mss, 1460);
  assert(synAck.windowScale !== undefined);
});

Deno.test("stack: a refused dial answers RST|ACK acknowledging the SYN (docs/tcp.md §3.1, §6.5)", () => {
  const t = testStack();
  t.stack.input(appSegment({ flags: SYN, seq: 5000 }), 0);
  t.stack.refuse(t.opened[0].id, 0);
  const rst = parseOut(t.sent[0]);
  assertEquals(rst.flags, RST | ACK);
  assertEquals(rst.ack, 5001);
  assertEquals(t.stack.flowCount(), 0);
});

Deno.test("stack: a duplicate SYN resends the same SYN-ACK without a second dial (docs/tcp.md §3.2)", () => {
  const t = testStack();
  t.stack.input(appSegment({ flags: SYN, seq: 1000 }), 0);
  t.stack.accept(t.opened[0].id, 0);
  t.stack.input(appSegment({ flags: SYN, seq: 1000 }), 5);
  assertEquals(t.opened.length, 1);
  assertEquals(t.sent.length, 2);
  assertEquals(parseOut(t.sent[1]).seq, parseOut(t.sent[0]).seq);
});

Deno.test("stack: in-order data is delivered and ACKed; the window tracks unconsumed bytes (docs/tcp.md §4.3, §4.4)", () => {
  const t = established(64 * 1024);
  const payload = new TextEncoder().encode("GET / HTTP/1.1\r\n\r\n");
  t.stack.input(appSegment({ flags: ACK, seq: 1001, ack: t.iss + 1, payload }), 2);
  t.stack.poll(3);
  assertEquals(new TextDecoder().decode(t.data.get(t.id)![0]), "GET / HTTP/1.1\r\n\r\n");
  const ack = parseOut(t.sent.at(-1)!);
  assertEquals(ack.ack, 1001 + payload.length);
  const windowBefore = ack.window;
  t.stack.consumed(t.id, payload.length, 4);
  t.stack.poll(5);
  assert(parseOut(t.sent.at(-1)!).window >= windowBefore, "the right edge never moves left");
});

Deno.test("stack: a zero-window probe below RCV.NXT draws an ACK (docs/tcp.md §4.1)", () => {
  const t = established();
  t.stack.input(appSegment({ flags: ACK, seq: 1000, ack: t.iss + 1 }), 2);
  const ack = parseOut(t.sent.at(-1)!);
  assertEquals(ack.flags, ACK);
  assertEquals(ack.ack, 1001);
});

Deno.test("stack: out-of-order data is held, dup-ACKed, and delivered when the hole fills (docs/tcp.md §4.7)", () => {
  const t = established();
  const a = new Uint8Array(100).fill(65);
  const b = new Uint8Array(100).fill(66);
  t.stack.input(appSegment({ flags: ACK, seq: 1101, ack: t.iss + 1, payload: b }), 2);
  assertEquals(parseOut(t.sent.at(-1)!).ack, 1001, "dup-ACK for the hole");
  assertEquals(t.data.get(t.id), undefined);
  t.stack.input(appSegment({ flags: ACK, seq: 1001, ack: t.iss + 1, payload: a }), 3);
  const delivered = t.data.get(t.id)!.flatMap((c) => [...c]);
  assertEquals(delivered.length, 200);
  assertEquals(delivered[150], 66);
  assertEquals(parseOut(t.sent.at(-1)!).ack, 1201);
});

Deno.test("stack: half-close both ways — app FIN is EOF, our FIN follows queued data (docs/tcp.md §6.1)", () => {
  const t = established();
  t.stack.input(appSegment({ flags: ACK | FIN, seq: 1001, ack: t.iss + 1 }), 2);
  assertEquals(t.eofs, [t.id]);
  const sent = t.stack.send(t.id, new TextEncoder().encode("response"), 3);
  assertEquals(sent, 8);
  t.stack.finish(t.id, 4);
  const data = parseOut(t.sent.find((p) => parseOut(p).payload.length > 0)!);
  assertEquals(new TextDecoder().decode(data.payload), "response");
  const fin = parseOut(t.sent.at(-1)!);
  assert(fin.flags & FIN);
  t.stack.input(appSegment({ flags: ACK, seq: 1002, ack: fin.seq + 1 }), 5);
  assertEquals(t.closed, [[t.id, "closed"]]);
  assertEquals(t.stack.flowCount(), 0);
});

Deno.test("stack: abort sends RST at SND.NXT, never a FIN (docs/tcp.md §6.5)", () => {
  const t = established();
  t.stack.abort(t.id, 2);
  const rst = parseOut(t.sent.at(-1)!);
  assert(rst.flags & RST);
  assertEquals(rst.seq, t.iss + 1);
  assertEquals(t.stack.flowCount(), 0);
});

Deno.test("stack: a segment for an unknown connection gets RST with SEQ = its ACK; a RST gets nothing (docs/tcp.md §6.5)", () => {
  const t = testStack();
  t.stack.input(appSegment({ flags: ACK, seq: 7, ack: 12345 }), 0);
  const rst = parseOut(t.sent[0]);
  assertEquals(rst.flags, RST);
  assertEquals(rst.seq, 12345);
  t.stack.input(appSegment({ flags: RST, seq: 7 }), 0);
  assertEquals(t.sent.length, 1);
});

Deno.test("stack: data is retransmitted after the RTO when unacknowledged (docs/tcp.md §5.2)", () => {
  const t = established();
  t.stack.send(t.id, new Uint8Array(10).fill(1), 10);
  const first = t.sent.length;
  t.stack.poll(500);
  t.stack.poll(1500);
  assert(t.sent.length > first, "a retransmission went out");
  assertEquals(parseOut(t.sent.at(-1)!).seq, t.iss + 1);
});

Deno.test("stack: ICMP echo to a routed address is answered; UDP is delivered (docs/tcp.md §7.1)", () => {
  const t = testStack();
  const echo = new Uint8Array(28 + 4);
  echo.set([0x45, 0, 0, 32, 0, 1, 0x40, 0, 64, 1, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2]);
  const ipSum = finish(sum(echo, 0, 20));
  echo[10] = ipSum >> 8;
  echo[11] = ipSum & 0xff;
  echo.set([8, 0, 0, 0, 0, 7, 0, 1, 1, 2, 3, 4], 20);
  const icmpSum = finish(sum(echo, 20, 32));
  echo[22] = icmpSum >> 8;
  echo[23] = icmpSum & 0xff;
  t.stack.input(echo, 0);
  const reply = t.sent[0];
  assertEquals(reply[20], 0, "echo reply");
  assertEquals([...reply.subarray(12, 20)], [198, 18, 0, 2, 198, 18, 0, 1], "addresses swapped");
  assertEquals(finish(sum(reply, 20, reply.length)), 0, "valid checksum");
});

Deno.test("stack: 1,000,000 random and mutated packets never throw and leave no connection behind", () => {
  const t = testStack();
  const seeds = [
    appSegment({ flags: SYN, seq: 1, mss: 1460, windowScale: 7 }),
    appSegment({ flags: ACK, seq: 2, ack: 3, payload: new Uint8Array(64).fill(7) }),
    appSegment({ flags: ACK | FIN, seq: 9, ack: 1 }),
  ];
  let state = 0x12345678;
  const random = () => (state = (Math.imul(state, 1664525) + 1013904223) >>> 0);
  const rounds = 1_000_000;
  const heapBefore = Deno.memoryUsage().heapUsed;
  for (let i = 0; i < rounds; i++) {
    let packet: Uint8Array;
    if (i % 3 === 0) {
      packet = new Uint8Array(random() % 80);
      for (let j = 0; j < packet.length; j++) packet[j] = random() & 0xff;
      if (packet.length > 0) packet[0] = 0x45;
    } else {
      packet = seeds[i % seeds.length].slice(0, 20 + (random() % 80));
      for (let k = 0; k < 3; k++) packet[random() % packet.length] ^= 1 << (random() % 8);
    }
    t.stack.input(packet, i);
    if (t.opened.length > 0) {
      for (const flow of t.opened.splice(0)) {
        if (random() % 2) t.stack.accept(flow.id, i);
        else t.stack.refuse(flow.id, i);
      }
    }
  }
  // Let every timer run out: SYN-ACK retries, RTO give-up, TIME-WAIT.
  for (let now = rounds; now < rounds + 3_600_000; now += 10_000) t.stack.poll(now);
  assertEquals(t.stack.flowCount(), 0, "no connection state leaks");
  const growth = Deno.memoryUsage().heapUsed - heapBefore;
  assert(growth < 64 * 1024 * 1024, `memory stays flat (heap grew ${growth} bytes)`);
});
