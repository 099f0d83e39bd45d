/**
 * The stack with TUN offload (IFF_VNET_HDR, docs/platform.md §2.3): partial checksums out,
 * super-segments for the kernel to cut, and no re-verification of packets the kernel vouches for.
 */
import { assert, assertEquals } from "../assert.ts";
import { ACK, SYN } from "../../core/net/wire/tcp.ts";
import { finish, pseudoHeaderSum, sum } from "../../core/net/wire/checksum.ts";
import { PROTO_TCP } from "../../core/net/wire/ipv4.ts";
import { checksumTrusted, writeVnetHeader } from "../../core/net/wire/virtio.ts";
import { APP, appSegment, establishedStack, parseOut, testStack, VIP } from "./packets.ts";

// A wide window (8192 scaled by 2^7) so the stack may send a lot at once.
const established = (mtu: number, mss: number) =>
  establishedStack({ mtu, mss, offload: true, receiveBuffer: 1 << 20, window: 8192 });

Deno.test("offload: TCP checksums are left to the kernel (the field holds the pseudo-header sum)", () => {
  const t = testStack({ offload: true });
  t.stack.input(appSegment({ flags: SYN, seq: 1000, mss: 1460 }), 0);
  t.stack.accept(t.opened[0].id, 0);
  const packet = t.sent[0];
  assertEquals(t.offloads[0], { kind: "csum", ipHeaderLength: 20 });
  const tcpLength = packet.length - 20;
  const field = (packet[36] << 8) | packet[37];
  assertEquals(field, (~finish(pseudoHeaderSum(VIP, APP, PROTO_TCP, tcpLength))) & 0xffff);
  // What the kernel does with it: sum from csum_start and store the complement.
  const completed = packet.slice();
  const total = finish(sum(completed, 20, packet.length));
  completed[36] = total >> 8;
  completed[37] = total & 0xff;
  assertEquals(parseOut(completed).flags, SYN | ACK, "valid once the kernel finishes it");
});

Deno.test("offload: bulk data leaves as super-segments of whole MSS pieces for the kernel to cut (TSO)", () => {
  const t = established(1500, 1460);
  t.stack.send(t.id, new Uint8Array(200_000).fill(7), 2);
  const data = t.sent.map((p) => parseOut(p, false)).filter((s) => s.payloadLength > 0);
  assert(data.length > 0);
  const first = data[0];
  assertEquals(first.payloadLength, 44 * 1460, "44 × MSS fit in one IPv4 packet");
  assertEquals(t.offloads[t.sent.findIndex((p) => parseOut(p, false).payloadLength > 0)], {
    kind: "tso",
    ipHeaderLength: 20,
    headerLength: 40,
    mss: 1460,
  });
});

Deno.test("offload: at MTU 65520 (MSS 65480, larger than any multiple that fits) data still flows", () => {
  const t = established(65520, 65480);
  t.stack.send(t.id, new Uint8Array(300_000).fill(1), 2);
  const data = t.sent.map((p) => parseOut(p, false)).filter((s) => s.payloadLength > 0);
  assert(data.length >= 1, "no empty-segment loop");
  assertEquals(data[0].payloadLength, 65480);
  assertEquals(t.sent.length, data.length, "only data segments, no zero-length storm");
});

Deno.test("offload: packets the kernel vouches for are not re-verified; others still are", () => {
  const bad = appSegment({ flags: SYN, seq: 1000, mss: 1460 });
  bad[36] ^= 0xff; // break the checksum
  const strict = testStack({ offload: true });
  strict.stack.input(bad, 0);
  assertEquals(strict.opened.length, 0, "a bad checksum is dropped");
  const trusting = testStack({ offload: true });
  trusting.stack.input(bad, 0, true);
  assertEquals(trusting.opened.length, 1, "a partial checksum from the kernel is accepted");
});

Deno.test("offload: the virtio header says what the kernel must finish (§4.3 field layout)", () => {
  const header = new Uint8Array(10);
  writeVnetHeader(header, { kind: "tso", ipHeaderLength: 20, headerLength: 40, mss: 1460 });
  assertEquals([...header], [0x01, 0x01, 40, 0, 0xb4, 0x05, 20, 0, 16, 0]);
  writeVnetHeader(header, { kind: "csum", ipHeaderLength: 20 });
  assertEquals([...header], [0x01, 0, 0, 0, 0, 0, 20, 0, 16, 0]);
  writeVnetHeader(header, { kind: "none" });
  assertEquals([...header], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  assert(checksumTrusted(new Uint8Array([0x01, 1, 40, 0, 0xb4, 5, 20, 0, 16, 0])));
  assert(!checksumTrusted(new Uint8Array(10)));
});
