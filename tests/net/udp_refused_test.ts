/**
 * UDP to a port nothing serves in the TUN is refused with ICMP port unreachable (RFC 792, RFC 1122
 * §4.1.3.1), so the app's socket fails at once (ECONNREFUSED) instead of waiting out its timeout,
 * and a flood of such datagrams gets a bounded number of replies (RFC 1812 §4.3.2.8).
 */
import { assert, assertEquals } from "../assert.ts";
import { finish, sum } from "../../core/net/wire/checksum.ts";
import { parseIpv4, PROTO_ICMP } from "../../core/net/wire/ipv4.ts";
import { emitUdp } from "../../core/net/wire/udp.ts";
import { APP, testStack, VIP } from "./packets.ts";

/** A datagram from the app to the VIP's `port`. */
function datagram(port: number, payloadLength = 12): Uint8Array {
  const out = new Uint8Array(65536);
  const payload = Uint8Array.from({ length: payloadLength }, (_, i) => i & 0xff);
  return out.slice(0, emitUdp(out, APP, VIP, 40000, port, payload, 7));
}

const dnsOnly = () => testStack({ udpPorts: new Set([53]) });

Deno.test("udp: a datagram to a port nothing serves is answered with ICMP port unreachable quoting it, and not delivered", () => {
  const t = dnsOnly();
  const sent = datagram(9999);
  t.stack.input(sent, 0);
  assertEquals(t.udp, [], "not handed to the host");
  assertEquals(t.sent.length, 1);
  const reply = t.sent[0];
  const ip = parseIpv4(reply, reply.length);
  assert(ip, "a valid IPv4 header");
  assertEquals([ip.protocol, ip.src, ip.dst], [PROTO_ICMP, VIP, APP], "from the VIP to the app");
  assertEquals([reply[20], reply[21]], [3, 3], "destination unreachable, port unreachable");
  assertEquals(finish(sum(reply, 20, reply.length)), 0, "valid ICMP checksum");
  assertEquals([...reply.subarray(24, 28)], [0, 0, 0, 0], "the unused word is zero");
  assertEquals(reply.subarray(28), sent, "the whole datagram quoted (it is short)");
  assertEquals([t.stack.stats.udpRefused, t.stack.stats.icmpLimited], [1, 0]);
});

Deno.test("udp: a served port is delivered, not refused", () => {
  const t = dnsOnly();
  t.stack.input(datagram(53), 0);
  assertEquals(t.sent, []);
  assertEquals(t.udp.map((d) => d.dstPort), [53]);
});

Deno.test("udp: a large datagram's ICMP error quotes only what keeps it within 576 bytes", () => {
  const t = dnsOnly();
  const sent = datagram(9999, 3000);
  t.stack.input(sent, 0);
  const reply = t.sent[0];
  assertEquals(reply.length, 576);
  assertEquals(reply.subarray(28), sent.subarray(0, 576 - 28));
  assertEquals(finish(sum(reply, 20, reply.length)), 0);
});

Deno.test("udp: a flood to closed ports gets at most 50 replies at once and 1,000 a second", () => {
  const t = dnsOnly();
  const packet = datagram(9999);
  for (let i = 0; i < 10_000; i++) t.stack.input(packet, 0);
  assertEquals(t.sent.length, 50, "the burst");
  // Then one datagram every half millisecond for a second: the bucket refills at 1 a millisecond.
  for (let i = 1; i <= 2000; i++) t.stack.input(packet, i / 2);
  assertEquals(t.sent.length, 50 + 1000);
  assertEquals(t.stack.stats.udpRefused, 12_000);
  assertEquals(t.stack.stats.icmpLimited, 12_000 - 1050);
});

Deno.test("udp: without a list of served ports every datagram goes to the host", () => {
  const t = testStack();
  t.stack.input(datagram(9999), 0);
  assertEquals(t.sent, []);
  assertEquals(t.udp.map((d) => d.dstPort), [9999]);
});
