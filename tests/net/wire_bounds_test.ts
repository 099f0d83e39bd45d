/**
 * Every length and option field read from the wire is bounded before use (RFC 9293 §3.1,
 * RFC 7323 §2.3, RFC 791): malformed headers are dropped or read up to the first bad option, and
 * nothing the wire says makes a parser read past the packet or a writer past its buffer.
 */
import { parseIpv4Address } from "../../core/net/wire/ipv4.ts";
import { assert, assertEquals } from "../assert.ts";
import { parseIpv4 } from "../../core/net/wire/ipv4.ts";
import { parseTcp, SYN } from "../../core/net/wire/tcp.ts";
import { emitUdp } from "../../core/net/wire/udp.ts";
import { emitEchoReply } from "../../core/net/wire/icmp.ts";
import { finish, sum } from "../../core/net/wire/checksum.ts";
import { TcpOption, tcpPacket } from "../adversarial/hostile_packets.ts";
import { testStack } from "./packets.ts";

const IP = { src: "198.18.0.1", dst: "198.18.0.2" };

/** Parses a SYN carrying the raw option bytes `options`. */
function synWith(options: number[], dataOffset?: number) {
  const packet = tcpPacket(IP, {
    srcPort: 40000,
    dstPort: 80,
    flags: SYN,
    options: new Uint8Array(options),
    dataOffset,
  });
  const ip = parseIpv4(packet, packet.length);
  return ip && parseTcp(packet, ip.headerLength, ip.totalLength, ip.src, ip.dst);
}

Deno.test("wire: an option of length 0 or 1 ends the option parse, keeping what came before", () => {
  for (const bad of [0, 1]) {
    const seg = synWith([...TcpOption.mss(1400), 8, bad, ...TcpOption.windowScale(7)]);
    assert(seg, `length ${bad}: the SYN itself is still read`);
    assertEquals(seg.mss, 1400);
    assertEquals(seg.windowScale, undefined, "nothing after the malformed option is believed");
  }
});

Deno.test("wire: an option running past the header, or cut before its length byte, is not read", () => {
  assertEquals(synWith([1, 1, 1, 2, 40, 5, 180])?.mss, undefined); // MSS claiming 40 bytes
  assertEquals(synWith([1, 1, 1, 2])?.mss, undefined); // kind as the header's last byte
});

Deno.test("wire: a window scale above 14 is used as 14 (RFC 7323 §2.3); odd-sized options are skipped", () => {
  assertEquals(synWith(TcpOption.windowScale(200))?.windowScale, 14);
  const seg = synWith([4, 3, 0, 5, 7, 1, 2, 3, 4, 5, ...TcpOption.mss(1200), 2, 3, 9]);
  assertEquals(seg?.mss, 1200, "SACK options of odd lengths are stepped over");
});

Deno.test("wire: a data offset below 5 words or past the segment drops it", () => {
  assertEquals(synWith([], 4), null);
  assertEquals(synWith([], 15), null);
});

Deno.test("wire: IPv4 header length and total length must agree with the packet", () => {
  const packet = tcpPacket(IP, { srcPort: 1, dstPort: 2, flags: SYN });
  const withHeader = (at: number, value: number) => {
    const copy = packet.slice();
    copy[at] = value;
    copy[10] = copy[11] = 0;
    const checksum = finish(sum(copy, 0, 20));
    copy[10] = checksum >> 8;
    copy[11] = checksum & 0xff;
    return parseIpv4(copy, copy.length);
  };
  assertEquals(withHeader(0, 0x44), null, "IHL 4");
  assertEquals(withHeader(0, 0x4f), null, "IHL 15: the header ends past the total length");
  assertEquals(withHeader(3, 200), null, "a total length past the packet");
  assertEquals(withHeader(3, 19), null, "a total length shorter than the header");
  assert(withHeader(6, 0x20)?.fragment, "more fragments: flagged, so never parsed as TCP");
  const ip = parseIpv4(packet, packet.length)!;
  assertEquals(parseTcp(packet.subarray(0, 30), 20, ip.totalLength, ip.src, ip.dst), null);
});

Deno.test("wire: an echo reply or UDP datagram larger than the output buffer is not written", () => {
  const out = new Uint8Array(1564);
  const echo = new Uint8Array(20 + 4000);
  echo[20] = 8;
  const icmpSum = finish(sum(echo, 20, echo.length));
  echo[22] = icmpSum >> 8;
  echo[23] = icmpSum & 0xff;
  assertEquals(emitEchoReply(out, echo, 20, echo.length, 1, 2), 0);
  assertEquals(emitUdp(out, 1, 2, 53, 5353, new Uint8Array(4000)), 0);
  assertEquals(emitUdp(out, 1, 2, 53, 5353, new Uint8Array(100)), 128);
});

Deno.test("stack: a 9000-byte ICMP echo on a 1500-byte MTU is dropped without a fault", () => {
  const t = testStack();
  const packet = new Uint8Array(9000);
  packet.set([
    0x45,
    0,
    9000 >> 8,
    9000 & 0xff,
    0,
    1,
    0,
    0,
    64,
    1,
    0,
    0,
    198,
    18,
    0,
    1,
    198,
    18,
    0,
    2,
  ]);
  const ipSum = finish(sum(packet, 0, 20));
  packet[10] = ipSum >> 8;
  packet[11] = ipSum & 0xff;
  packet[20] = 8;
  const icmpSum = finish(sum(packet, 20, packet.length));
  packet[22] = icmpSum >> 8;
  packet[23] = icmpSum & 0xff;
  t.stack.input(packet, 0);
  assertEquals(t.sent.length, 0);
  assertEquals(t.stack.stats.faults, 0, "nothing threw inside the stack");
  t.stack.sendUdp({
    srcAddress: parseIpv4Address("198.18.0.2"),
    srcPort: 53,
    dstAddress: parseIpv4Address("198.18.0.1"),
    dstPort: 5353,
    payload: new Uint8Array(9000),
  }, 0);
  assertEquals(t.sent.length, 0, "an oversized datagram from the host is dropped, not thrown");
});
