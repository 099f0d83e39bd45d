/**
 * The stack never sends past the app's advertised right edge (RFC 9293 §3.8.6), with a scaled
 * window (wscale 10, as Linux offers for large buffers) that a slow reader keeps nearly closed,
 * with and without segmentation offload.
 */
import { assert } from "../assert.ts";
import { ACK } from "../../core/net/wire/tcp.ts";
import { appSegment, establishedStack, parseOut } from "./packets.ts";

for (const offload of [false, true]) {
  Deno.test(`stack: no segment passes the peer right edge under a slow reader (offload ${offload})`, () => {
    let win = 400; // ×1024
    const t = establishedStack({ offload, receiveBuffer: 1 << 20, windowScale: 10, window: win });
    const { id, iss } = t;
    let una = t.una;
    t.stack.send(id, new Uint8Array(4_000_000), 2);
    let now = 3;
    for (let round = 0; round < 200; round++) {
      const right = (una + win * 1024) >>> 0;
      for (const p of t.sent) {
        const s = parseOut(p, false);
        const end = (s.seq + s.payloadLength) >>> 0;
        assert(
          ((right - end) | 0) >= 0 || s.payloadLength <= 1,
          `round ${round}: sent up to ${end - iss}, right edge ${right - iss}`,
        );
      }
      t.sent.length = 0;
      // the app acks a little and its window shrinks (slow reader), never moving the right edge left
      const ackBy = 20_000;
      una = (una + ackBy) >>> 0;
      const newWin = Math.max(0, win - Math.floor(ackBy / 1024) - 3);
      win = Math.max(newWin, Math.ceil(((right - una) | 0) / 1024)); // no shrink
      if (round % 10 === 9) win += 100; // the reader drains
      t.stack.input(appSegment({ flags: ACK, seq: 1001, ack: una, window: win }), now++);
      t.stack.poll(now++);
    }
  });
}

Deno.test("stack: 3 duplicate ACKs resend the whole burst, and a partial ACK resends from the next hole (T20, RFC 6582)", () => {
  const t = establishedStack({ receiveBuffer: 1 << 20, window: 1024 });
  const { id, una } = t;
  t.stack.send(id, new Uint8Array(10 * 1460), 2);
  t.sent.length = 0;
  for (let i = 0; i < 3; i++) {
    t.stack.input(appSegment({ flags: ACK, seq: 1001, ack: una, window: 1024 }), 3 + i);
  }
  const resent = t.sent.map((p) => parseOut(p)).filter((s) => s.payloadLength > 0);
  assert(resent[0].seq === una, "from the first unacknowledged byte");
  assert(resent.length === 10, `the whole burst at once (${resent.length} segments)`);
  t.sent.length = 0;
  const partial = (una + 3 * 1460) >>> 0;
  t.stack.input(appSegment({ flags: ACK, seq: 1001, ack: partial, window: 1024 }), 10);
  const again = t.sent.map((p) => parseOut(p)).filter((s) => s.payloadLength > 0);
  assert(again.length > 0 && again[0].seq === partial, "a partial ACK resends from its hole");
});

Deno.test("stack: a burst whose tail was lost is resent after a probe timeout, long before the 200 ms RTO (RFC 8985)", () => {
  const t = establishedStack({ receiveBuffer: 1 << 20, window: 1024 });
  const { id, una } = t;
  t.stack.send(id, new Uint8Array(4 * 1460), 2);
  // The app's kernel takes the first two segments and drops the rest (no later segment, so no
  // duplicate ACKs will come).
  t.stack.input(
    appSegment({ flags: ACK, seq: 1001, ack: (una + 2 * 1460) >>> 0, window: 1024 }),
    3,
  );
  t.sent.length = 0;
  t.stack.poll(8);
  assert(t.sent.length === 0, "nothing before the probe timeout");
  t.stack.poll(20);
  const resent = t.sent.map((p) => parseOut(p)).filter((s) => s.payloadLength > 0);
  assert(resent.length === 2, `the lost tail is resent at once (${resent.length})`);
  assert(resent[0].seq === ((una + 2 * 1460) >>> 0));
});
