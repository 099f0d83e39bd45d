/**
 * Destinations whose dials succeed get their next SYNs answered before the dial (docs/tcp.md
 * §3.1): the app is connected at once, its bytes wait in the stack until the dial succeeds, a
 * failed dial resets it and makes the destination dial-first again. Packets in, packets out.
 */
import { assertEquals } from "../assert.ts";
import { ACK, FIN, PSH, RST, SYN } from "../../core/net/wire/tcp.ts";
import { AcceptingDestinations } from "../../core/net/accepting_destinations.ts";
import { appSegment, parseOut, testStack, type TestStackOptions, VIP } from "./packets.ts";

const REQUEST = new TextEncoder().encode("GET / HTTP/1.1\r\n\r\n");

/** A stack that has dialed `VIP:80` once, successfully; nothing sent or announced is left. */
function warmStack(options: TestStackOptions = {}) {
  const t = testStack(options);
  t.stack.input(appSegment({ srcPort: 2000, flags: SYN, seq: 1, mss: 1460 }), 0);
  t.stack.accept(t.opened[0].id, 1);
  assertEquals(parseOut(t.sent.at(-1)!).flags, SYN | ACK, "the first SYN waited for its dial");
  t.sent.length = 0;
  return t;
}

/** The app's SYN from `port` at `now`; what the stack answered right away (if anything). */
function syn(t: ReturnType<typeof testStack>, port: number, now: number, dstPort = 80) {
  t.stack.input(appSegment({ srcPort: port, dstPort, flags: SYN, seq: 100, mss: 1460 }), now);
  const answer = t.sent.at(-1);
  t.sent.length = 0;
  return answer && parseOut(answer);
}

Deno.test("answer before dial: a SYN to a destination that accepted is answered at once, and still dialed", () => {
  const t = warmStack();
  const answer = syn(t, 3000, 10);
  assertEquals(answer?.flags, SYN | ACK, "SYN-ACK before the dial answered");
  assertEquals(answer?.ack, 101);
  assertEquals(t.opened.length, 2, "the dial is asked for all the same");
  // Another port of the same address, and another address, were never dialed: dial first.
  assertEquals(syn(t, 3001, 11, 81), undefined);
});

Deno.test("answer before dial: the app's data and FIN wait in the stack until the dial succeeds", () => {
  const t = warmStack();
  const synAck = syn(t, 3000, 10)!;
  const id = t.opened[1].id;
  t.stack.input(
    appSegment({
      srcPort: 3000,
      flags: ACK | PSH | FIN,
      seq: 101,
      ack: (synAck.seq + 1) >>> 0,
      window: 65535,
      payload: REQUEST,
    }),
    11,
  );
  t.stack.poll(11);
  assertEquals(t.data.get(id), undefined, "nothing reaches the relay before the dial succeeds");
  assertEquals(t.eofs, []);
  const acked = parseOut(t.sent.at(-1)!);
  assertEquals(acked.ack, 101 + REQUEST.length + 1, "the bytes and the FIN are acknowledged");
  t.stack.accept(id, 12);
  assertEquals(t.data.get(id)?.map((d) => d.length), [REQUEST.length]);
  assertEquals(t.eofs, [id], "the FIN follows the data once the dial succeeded");
});

Deno.test("answer before dial: a failed dial resets the connection and the destination is dialed first again", () => {
  const t = warmStack();
  const synAck = syn(t, 3000, 10)!;
  t.stack.refuse(t.opened[1].id, 11);
  const reset = parseOut(t.sent.at(-1)!);
  assertEquals(reset.flags & RST, RST, "a connected app is reset");
  assertEquals(reset.seq, (synAck.seq + 1) >>> 0, "at SND.NXT, after our SYN-ACK");
  t.sent.length = 0;
  assertEquals(syn(t, 3001, 12), undefined, "the next SYN waits for its dial again");
  t.stack.refuse(t.opened[2].id, 13);
  const refused = parseOut(t.sent.at(-1)!);
  assertEquals(refused.flags, RST | ACK, "refused before any SYN-ACK: ECONNREFUSED");
  assertEquals(refused.seq, 0);
});

Deno.test("answer before dial: a SYN retransmitted before the dial answered gets the same SYN-ACK again", () => {
  const t = warmStack();
  const first = syn(t, 3000, 10)!;
  const again = syn(t, 3000, 1010)!;
  assertEquals(again.flags, SYN | ACK);
  assertEquals(again.seq, first.seq);
  assertEquals(t.opened.length, 2, "one dial");
});

Deno.test("answer before dial: the memory lapses, and 0 turns it off", () => {
  const t = warmStack({ acceptingMemoryMs: 1000 });
  assertEquals(syn(t, 3000, 999)?.flags, SYN | ACK);
  t.stack.accept(t.opened[1].id, 999); // confirmed again at 999: good until 1999
  assertEquals(syn(t, 3001, 1998)?.flags, SYN | ACK);
  assertEquals(syn(t, 3002, 3500), undefined, "no dial succeeded for over a second");
  const off = warmStack({ acceptingMemoryMs: 0 });
  assertEquals(syn(off, 3000, 10), undefined);
});

Deno.test("answer before dial: connections answered before their dial are bounded like cookie dials", () => {
  const t = warmStack({ maxHalfOpen: 2, maxHalfOpenPerSource: 2 });
  // Two connections answered at once; the app completes both handshakes, so neither holds a
  // half-open slot, but both dials still run on connections the app believes established.
  for (const port of [3000, 3001]) {
    const synAck = syn(t, port, 10)!;
    assertEquals(synAck.flags, SYN | ACK);
    t.stack.input(
      appSegment({ srcPort: port, flags: ACK, seq: 101, ack: (synAck.seq + 1) >>> 0 }),
      10,
    );
  }
  t.sent.length = 0;
  assertEquals(syn(t, 3002, 11), undefined, "the bound is reached: this one dials first");
  assertEquals(t.opened.length, 4, "and is dialed");
  t.stack.accept(t.opened[1].id, 12); // one early dial answers: a slot frees up
  assertEquals(syn(t, 3003, 13)?.flags, SYN | ACK);
});

Deno.test("answer before dial: aborting an answered connection resets it at SND.NXT", () => {
  const t = warmStack();
  const synAck = syn(t, 3000, 10)!;
  t.stack.accept(t.opened[1].id, 11);
  t.stack.abort(t.opened[1].id, 12);
  const reset = parseOut(t.sent.at(-1)!);
  assertEquals(reset.flags & RST, RST);
  assertEquals(reset.seq, (synAck.seq + 1) >>> 0, "in the app's window even before its ACK came");
});

Deno.test("accepting destinations: bounded, oldest confirmation evicted first", () => {
  const memory = new AcceptingDestinations(60_000);
  for (let port = 1; port <= 5000; port++) memory.accepted(VIP, port, 0);
  assertEquals(memory.size, 4096);
  assertEquals(memory.has(VIP, 1, 1), false, "the oldest went first");
  assertEquals(memory.has(VIP, 5000, 1), true);
  memory.refused(VIP, 5000);
  assertEquals(memory.has(VIP, 5000, 1), false);
  assertEquals(memory.has(VIP + 1, 4999, 1), false, "the address is part of the key");
});
