/**
 * Connections in SYN-RECEIVED each hold a dial, so they are bounded in total and per source
 * address (RFC 4987 §3): SYNs past the limits get a stateless SYN cookie instead of a dial
 * (syn_cookie_test.ts), and SYNs are dialed again once earlier handshakes complete or end.
 */
import { assert, assertEquals } from "../assert.ts";
import { ACK, SYN } from "../../core/net/wire/tcp.ts";
import { parseIpv4Address } from "../../core/net/wire/ipv4.ts";
import { APP, appSegment, parseOut, testStack } from "./packets.ts";

const OTHER = parseIpv4Address("198.18.0.77");

/** A SYN from `src`:`port`. */
const syn = (port: number, src = APP) =>
  appSegment({ src, srcPort: port, flags: SYN, seq: port * 7, mss: 1460 });

Deno.test("half-open: 10,000 SYNs from one source open at most its limit of dials; the rest get cookies", () => {
  const t = testStack({ maxHalfOpen: 512, maxHalfOpenPerSource: 128 });
  for (let i = 0; i < 10_000; i++) t.stack.input(syn(1024 + i), i);
  assertEquals(t.opened.length, 128);
  assertEquals(t.stack.stats.synCookiesSent, 10_000 - 128);
  assertEquals(t.sent.length, 10_000 - 128, "one SYN-ACK per SYN past the limit");
  assertEquals(t.stack.flowCount(), 128);
});

Deno.test("half-open: 10,000 SYNs from many sources open at most the total limit of dials", () => {
  const t = testStack({ maxHalfOpen: 512, maxHalfOpenPerSource: 128 });
  for (let i = 0; i < 10_000; i++) {
    t.stack.input(syn(1024 + (i % 60000), (APP + 1000 + i) >>> 0), i);
  }
  assertEquals(t.opened.length, 512);
  assertEquals(t.stack.stats.synCookiesSent, 10_000 - 512);
});

Deno.test("half-open: once dials are refused or handshakes complete, new SYNs get in again", () => {
  const t = testStack({ maxHalfOpen: 4, maxHalfOpenPerSource: 4 });
  for (let port = 2000; port < 2010; port++) t.stack.input(syn(port), 0);
  assertEquals(t.opened.length, 4);
  // Two dials fail; two succeed and the app completes their handshakes.
  t.stack.refuse(t.opened[0].id, 1);
  t.stack.refuse(t.opened[1].id, 1);
  for (const flow of t.opened.slice(2)) {
    t.stack.accept(flow.id, 1);
    const synAck = parseOut(t.sent.at(-1)!);
    t.stack.input(
      appSegment({
        srcPort: flow.srcPort,
        flags: ACK,
        seq: flow.srcPort * 7 + 1,
        ack: (synAck.seq + 1) >>> 0,
      }),
      2,
    );
  }
  assertEquals(t.stack.flowCount(), 2, "two established connections remain");
  // The app's kernel retransmits the SYNs that got cookies: four of them are dialed now.
  for (let port = 2004; port < 2010; port++) t.stack.input(syn(port), 1000);
  assertEquals(t.opened.length, 8);
});

Deno.test("half-open: a SYN-ACK that is never answered frees its slot when the handshake times out", () => {
  const t = testStack({ maxHalfOpen: 1, maxHalfOpenPerSource: 1 });
  t.stack.input(syn(3000), 0);
  t.stack.accept(t.opened[0].id, 0);
  for (let now = 0; now <= 120_000; now += 1000) t.stack.poll(now);
  assertEquals(t.stack.flowCount(), 0);
  t.stack.input(syn(3001), 120_001);
  assertEquals(t.opened.length, 2);
});

Deno.test("half-open: a second source still gets in while the first floods", () => {
  const t = testStack({ maxHalfOpen: 512, maxHalfOpenPerSource: 128 });
  for (let i = 0; i < 5_000; i++) {
    t.stack.input(syn(1024 + i), i);
    if (i % 1000 === 999) t.stack.input(syn(5000 + i, OTHER), i);
  }
  const fromOther = t.opened.filter((f) => f.srcAddress === parseIpv4Address("198.18.0.77"));
  assertEquals(fromOther.length, 5, "every SYN of the second source opened a dial");
  assert(t.opened.length === 128 + 5);
});
