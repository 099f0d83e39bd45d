/**
 * Reassembly after a loss (RFC 9293 §3.10.7.4): the segments that follow a lost one are all kept
 * (up to the receive buffer), so the sender's one retransmission fills the hole and the next ACK
 * covers everything — without SACK, a dropped follower would cost the sender a retransmission
 * (or an RTO) of its own. Without TUN offload a window is thousands of MTU-sized packets.
 */
import { assertEquals } from "../assert.ts";
import { ACK } from "../../core/net/wire/tcp.ts";
import { appSegment, establishedStack, parseOut } from "./packets.ts";

const MSS = 1460;

Deno.test("reassembly: one retransmission fills a hole followed by 2,000 MTU-sized segments", () => {
  const t = establishedStack({ receiveBuffer: 4 * 1024 * 1024 });
  const ack = t.una;
  const segment = (index: number) =>
    appSegment({
      flags: ACK,
      seq: 1001 + index * MSS,
      ack,
      payload: new Uint8Array(MSS).fill(index & 0xff),
    });
  for (let i = 1; i <= 2000; i++) t.stack.input(segment(i), 2);
  assertEquals(parseOut(t.sent.at(-1)!).ack, 1001, "each follower is dup-ACKed for the hole");
  assertEquals(t.data.get(t.id), undefined);
  t.stack.input(segment(0), 3); // the retransmission
  assertEquals(parseOut(t.sent.at(-1)!).ack, 1001 + 2001 * MSS, "the ACK covers every follower");
  const delivered = t.data.get(t.id)!.flatMap((chunk) => [...chunk]);
  assertEquals(delivered.length, 2001 * MSS);
  for (const i of [0, 1, 999, 2000]) assertEquals(delivered[i * MSS], i & 0xff, `segment ${i}`);
});

Deno.test("reassembly: repeated and overlapping out-of-order segments are kept once, in order", () => {
  const t = establishedStack();
  const ack = t.una;
  const bytes = (from: number, length: number) =>
    Uint8Array.from({ length }, (_, i) => (from + i) & 0xff);
  const at = (offset: number, length: number) =>
    appSegment({ flags: ACK, seq: 1001 + offset, ack, payload: bytes(offset, length) });
  for (const [offset, length] of [[300, 100], [100, 100], [300, 100], [200, 150], [100, 100]]) {
    t.stack.input(at(offset, length), 2);
  }
  t.stack.input(at(0, 100), 3);
  const delivered = t.data.get(t.id)!.flatMap((chunk) => [...chunk]);
  assertEquals(delivered, [...bytes(0, 400)]);
  assertEquals(parseOut(t.sent.at(-1)!).ack, 1001 + 400);
});
