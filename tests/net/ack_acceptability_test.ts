/**
 * RFC 5961 §5: an ACK outside [SND.UNA − MAX.SND.WND, SND.MAX] is not believed — the segment is
 * dropped with its data and answered with a challenge ACK, at most one per 500 ms (RFC 5961 §7).
 */
import { assert, assertEquals } from "../assert.ts";
import { ACK, RST } from "../../core/net/wire/tcp.ts";
import { appSegment, establishedStack, parseOut } from "./packets.ts";

const payload = new TextEncoder().encode("forged");

Deno.test("ack acceptability: data whose ACK lies far behind SND.UNA is not delivered, and draws a challenge ACK", () => {
  const t = establishedStack();
  const blind = (t.una - 10_000_000) >>> 0; // far beyond any window the app offered
  t.stack.input(appSegment({ flags: ACK, seq: 1001, ack: blind, payload }), 2);
  t.stack.poll(3);
  assertEquals(t.data.get(t.id), undefined, "the data is dropped");
  assertEquals(t.sent.length, 1);
  const challenge = parseOut(t.sent[0]);
  assertEquals(challenge.flags, ACK);
  assertEquals(challenge.ack, 1001, "the ACK states what we really expect");
  assertEquals(challenge.seq, t.una);
});

Deno.test("ack acceptability: an ACK a little behind SND.UNA (an old duplicate) still carries data", () => {
  const t = establishedStack();
  t.stack.send(t.id, new Uint8Array(1000), 2);
  const una = (t.una + 1000) >>> 0;
  t.stack.input(appSegment({ flags: ACK, seq: 1001, ack: una }), 3);
  // reordered: an older ACK arrives with new data
  t.stack.input(appSegment({ flags: ACK, seq: 1001, ack: t.una, payload }), 4);
  assertEquals(t.data.get(t.id)?.[0].length, payload.length);
});

Deno.test("ack acceptability: data acknowledging bytes never sent is not delivered either", () => {
  const t = establishedStack();
  t.stack.input(appSegment({ flags: ACK, seq: 1001, ack: (t.una + 5000) >>> 0, payload }), 2);
  assertEquals(t.data.get(t.id), undefined);
  assertEquals(parseOut(t.sent.at(-1)!).ack, 1001);
});

Deno.test("ack acceptability: challenge ACKs are throttled to one per 500 ms per connection", () => {
  const t = establishedStack();
  const blind = (t.una - 10_000_000) >>> 0;
  for (let i = 0; i < 1000; i++) {
    t.stack.input(appSegment({ flags: ACK, seq: 1001, ack: blind, payload }), 10 + i * 0.1);
  }
  // In-window RSTs draw challenge ACKs from the same budget (RFC 5961 §3.2).
  t.stack.input(appSegment({ flags: RST, seq: 1500 }), 200);
  assertEquals(t.sent.length, 1, "one challenge ACK for a thousand forged segments");
  t.stack.input(appSegment({ flags: RST, seq: 1500 }), 600);
  assertEquals(t.sent.length, 2, "the next one 500 ms later");
  assert(t.stack.flowCount() === 1, "the connection survives");
});
