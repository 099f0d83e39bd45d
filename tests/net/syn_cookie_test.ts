/**
 * SYN cookies (RFC 4987 §3.6): past the half-open limits a SYN is answered statelessly, and only
 * the app's ACK that brings a valid cookie back creates the connection and dials. Packets in,
 * packets out: the half-open slot is filled first, so every later SYN takes the cookie path.
 */
import { parseIpv4Address } from "../../core/net/wire/ipv4.ts";
import { assert, assertEquals } from "../assert.ts";
import { ACK, FIN, PSH, RST, SYN } from "../../core/net/wire/tcp.ts";
import { APP, appSegment, parseOut, testStack } from "./packets.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const REQUEST = encoder.encode("GET / HTTP/1.1\r\n\r\n");

/** A stack whose one half-open slot holds a running dial: every further SYN gets a cookie. */
function stackAtLimit(options: { maxHalfOpen?: number } = {}) {
  const t = testStack({ maxHalfOpen: options.maxHalfOpen ?? 1, maxHalfOpenPerSource: 1 });
  t.stack.input(appSegment({ srcPort: 2999, flags: SYN, seq: 1, mss: 1460 }), 0);
  assertEquals(t.opened.length, 1);
  t.sent.length = 0;
  return t;
}

/** The app's SYN from `port` (ISN `isn`, MSS 1460, window scale 7 offered); the cookie it got. */
function cookieFor(t: ReturnType<typeof stackAtLimit>, port: number, isn: number, now = 0) {
  t.stack.input(
    appSegment({ srcPort: port, flags: SYN, seq: isn, mss: 1460, windowScale: 7 }),
    now,
  );
  const synAck = parseOut(t.sent.at(-1)!);
  assertEquals(synAck.flags, SYN | ACK);
  return synAck;
}

/** Bytes the stack sent as payload, in order. */
function payloads(sent: Uint8Array[]): string {
  return sent.map((p) => decoder.decode(parseOut(p).payload)).join("");
}

Deno.test("syn cookies: at the limit a SYN gets a SYN-ACK with a cookie, no state and no dial", () => {
  const t = stackAtLimit();
  const synAck = cookieFor(t, 3000, 5000);
  assertEquals(t.opened.length, 1, "nothing dialed");
  assertEquals(t.stack.flowCount(), 1, "no state kept");
  assertEquals(synAck.ack, 5001, "it acknowledges the SYN");
  assertEquals(synAck.mss, 1460, "our MSS is offered as usual");
  assertEquals(synAck.windowScale, undefined, "no window scaling: a cookie cannot carry it");
  assertEquals(synAck.window, 65535);
  assertEquals(t.stack.stats.synCookiesSent, 1);
  // A retransmitted SYN gets the same cookie (same key, same time counter), still no state.
  const again = cookieFor(t, 3000, 5000, 10);
  assertEquals(again.seq, synAck.seq);
  assertEquals(t.stack.flowCount(), 1);
});

Deno.test("syn cookies: the app's ACK with data opens the connection and dials; after accept the data flows both ways", () => {
  const t = stackAtLimit();
  const cookie = cookieFor(t, 3000, 5000).seq;
  t.sent.length = 0;
  t.stack.input(
    appSegment({
      srcPort: 3000,
      flags: ACK | PSH,
      seq: 5001,
      ack: (cookie + 1) >>> 0,
      window: 65535,
      payload: REQUEST,
    }),
    1,
  );
  t.stack.poll(1);
  assertEquals(t.opened.length, 2, "the ACK is what dials");
  const flow = t.opened[1];
  assertEquals([flow.srcAddress, flow.srcPort, flow.dstPort], [
    parseIpv4Address("198.18.0.1"),
    3000,
    80,
  ]);
  assertEquals(t.stack.stats.synCookiesValidated, 1);
  assertEquals(t.data.get(flow.id), undefined, "held until the dial succeeds");
  const ack = parseOut(t.sent.at(-1)!);
  assertEquals(ack.flags, ACK);
  assertEquals(ack.ack, 5001 + REQUEST.length, "the app's data is acknowledged meanwhile");
  assertEquals(ack.window, 65535 - REQUEST.length, "an unscaled window, in bytes");

  t.stack.accept(flow.id, 2);
  assertEquals(decoder.decode(t.data.get(flow.id)![0]), decoder.decode(REQUEST));
  t.sent.length = 0;
  const response = new Uint8Array(3000).fill(0x61);
  assertEquals(t.stack.send(flow.id, response, 3), 3000);
  t.stack.poll(3);
  const first = parseOut(t.sent[0]);
  assertEquals(first.seq, (cookie + 1) >>> 0, "our data starts right after the cookie");
  assertEquals(first.payload.length, 1460, "segments of the MSS the cookie carried");
  assertEquals(payloads(t.sent), "a".repeat(3000));
});

Deno.test("syn cookies: a pure ACK opens the connection; data and FIN before accept are delivered after it", () => {
  const t = stackAtLimit();
  const cookie = cookieFor(t, 3000, 5000).seq;
  const una = (cookie + 1) >>> 0;
  t.stack.input(appSegment({ srcPort: 3000, flags: ACK, seq: 5001, ack: una }), 1);
  assertEquals(t.opened.length, 2);
  const id = t.opened[1].id;
  t.stack.input(
    appSegment({ srcPort: 3000, flags: ACK | FIN, seq: 5001, ack: una, payload: REQUEST }),
    2,
  );
  assertEquals(t.data.get(id), undefined);
  assertEquals(t.eofs, [], "EOF waits for the data before it");
  t.stack.accept(id, 3);
  assertEquals(decoder.decode(t.data.get(id)![0]), decoder.decode(REQUEST));
  assertEquals(t.eofs, [id]);
});

Deno.test("syn cookies: a refused dial resets the connection the cookie opened", () => {
  const t = stackAtLimit();
  const cookie = cookieFor(t, 3000, 5000).seq;
  t.stack.input(appSegment({ srcPort: 3000, flags: ACK, seq: 5001, ack: (cookie + 1) >>> 0 }), 1);
  t.sent.length = 0;
  t.stack.refuse(t.opened[1].id, 2);
  const rst = parseOut(t.sent[0]);
  assert(rst.flags & RST, "the app, connected already, is reset");
  assertEquals(rst.seq, (cookie + 1) >>> 0, "at SND.NXT, where the app accepts it");
  assertEquals(t.stack.flowCount(), 1, "only the first slot's handshake remains");
});

Deno.test("syn cookies: a forged ACK (wrong cookie, other tuple, other ISN, stale) gets RST and opens nothing", () => {
  const t = stackAtLimit();
  const cookie = cookieFor(t, 3000, 5000).seq;
  const forgeries = [
    { srcPort: 3000, seq: 5001, ack: (cookie + 2) >>> 0 }, // wrong cookie
    { srcPort: 3000, seq: 5001, ack: (cookie ^ 0x100) + 1 >>> 0 }, // one MAC bit off
    { srcPort: 3001, seq: 5001, ack: (cookie + 1) >>> 0 }, // the cookie of another tuple
    { srcPort: 3000, seq: 6001, ack: (cookie + 1) >>> 0 }, // not the ISN the cookie was for
  ];
  for (const forged of forgeries) {
    t.sent.length = 0;
    t.stack.input(appSegment({ ...forged, flags: ACK }), 1);
    const rst = parseOut(t.sent[0]);
    assertEquals([rst.flags, rst.seq], [RST, forged.ack], "answered as an unknown segment");
  }
  assertEquals(t.stack.stats.synCookiesRejected, forgeries.length);
  // Two minutes on (cookies are still going out), the genuine ACK is stale.
  cookieFor(t, 4000, 1, 130_000);
  t.sent.length = 0;
  t.stack.input(
    appSegment({ srcPort: 3000, flags: ACK, seq: 5001, ack: (cookie + 1) >>> 0 }),
    130_001,
  );
  assertEquals(parseOut(t.sent[0]).flags, RST);
  assertEquals(t.stack.stats.synCookiesRejected, forgeries.length + 1);
  assertEquals(t.opened.length, 1, "nothing dialed");
  assertEquals(t.stack.flowCount(), 1);
  // The genuine ACK within the cookie's lifetime does open.
  const fresh = cookieFor(t, 3000, 5000, 130_002).seq;
  t.stack.input(
    appSegment({ srcPort: 3000, flags: ACK, seq: 5001, ack: fresh + 1 >>> 0 }),
    189_000,
  );
  assertEquals(t.opened.length, 2);
});

Deno.test("syn cookies: an ACK for an unknown connection is not taken for a cookie when none went out lately", () => {
  const t = testStack({ maxHalfOpen: 1, maxHalfOpenPerSource: 1 });
  t.stack.input(appSegment({ srcPort: 3000, flags: ACK, seq: 5001, ack: 1234 }), 0);
  assertEquals(parseOut(t.sent[0]).flags, RST);
  assertEquals(t.stack.stats.synCookiesRejected, 0, "not even checked");
});

Deno.test("syn cookies: 10,000 spoofed SYNs past the limits dial nothing and add no state", () => {
  const t = testStack({ maxHalfOpen: 512, maxHalfOpenPerSource: 128 });
  for (let i = 0; i < 10_000; i++) {
    const src = (APP + 1000 + (i % 20)) >>> 0; // 20 sources: both limits are reached
    t.stack.input(appSegment({ src, srcPort: 1024 + i, flags: SYN, seq: i * 7919 }), i);
    if (i === 999) assertEquals(t.stack.flowCount(), 512);
  }
  assertEquals(t.opened.length, 512, "the dials of the first SYNs only");
  assertEquals(t.stack.flowCount(), 512, "no state per cookie");
  assertEquals(t.stack.stats.synCookiesSent, 10_000 - 512);
  assertEquals(t.stack.stats.synCookiesValidated, 0);
});

Deno.test("syn cookies: cookie dials are bounded; a valid ACK past the bound is dropped and gets in when retransmitted", () => {
  const t = stackAtLimit({ maxHalfOpen: 1 });
  const first = cookieFor(t, 3000, 5000).seq;
  const second = cookieFor(t, 3001, 7000).seq;
  t.stack.input(appSegment({ srcPort: 3000, flags: ACK, seq: 5001, ack: first + 1 >>> 0 }), 1);
  assertEquals(t.opened.length, 2);
  t.sent.length = 0;
  const ack = appSegment({ srcPort: 3001, flags: ACK, seq: 7001, ack: second + 1 >>> 0 });
  t.stack.input(ack, 2);
  assertEquals(t.opened.length, 2, "one cookie dial runs: the second waits");
  assertEquals(t.sent.length, 0, "dropped unanswered, not reset");
  t.stack.accept(t.opened[1].id, 3);
  t.stack.input(ack, 4); // the app's kernel retransmits it
  assertEquals(t.opened.length, 3);
  assertEquals(t.opened[2].srcPort, 3001);
});
