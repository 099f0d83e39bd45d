/**
 * Zero-window probing (RFC 9293 §3.8.6.1): a reader that keeps its window closed but answers the
 * probes is probed for as long as it likes; one that stops answering is given up on within the
 * usual retransmission give-up. Time is the stack's injected clock.
 */
import { assert, assertEquals } from "../assert.ts";
import { ACK, RST } from "../../core/net/wire/tcp.ts";
import { appSegment, establishedStack, parseOut } from "./packets.ts";

const HOUR = 3_600_000;
const MINUTE = 60_000;

/** A connection whose app took a window's worth of data and then closed its window. */
function stalledReader() {
  const t = establishedStack({ window: 512 }); // 64 KiB at scale 7
  t.budget(1_000_000);
  t.stack.send(t.id, new Uint8Array(100_000), 2);
  const last = parseOut(t.sent.at(-1)!);
  const una = (last.seq + last.payloadLength) >>> 0;
  t.stack.input(appSegment({ flags: ACK, seq: 1001, ack: una, window: 0 }), 3);
  t.stack.poll(3);
  t.sent.length = 0;
  return { ...t, una };
}

/** Runs the clock from `from` to `until`, jumping between the stack's deadlines. */
function runClock(
  t: ReturnType<typeof stalledReader>,
  from: number,
  until: number,
  onSent: (now: number) => void,
): number {
  let now = from;
  while (now < until) {
    const next = t.stack.poll(now);
    onSent(now);
    if (next === undefined || t.stack.flowCount() === 0) break;
    now = Math.max(now + 1, next);
  }
  return now;
}

Deno.test("persist: a reader answering zero-window probes for 2 hours keeps its connection", () => {
  const t = stalledReader();
  let probes = 0;
  runClock(t, 4, 2 * HOUR, (now) => {
    for (const packet of t.sent.splice(0)) {
      const probe = parseOut(packet);
      assert(!(probe.flags & RST), `reset after ${Math.round(now / 1000)} s of answered probes`);
      probes++;
      t.stack.input(appSegment({ flags: ACK, seq: 1001, ack: t.una, window: 0 }), now);
    }
  });
  assertEquals(t.closed, []);
  assertEquals(t.stack.flowCount(), 1);
  assert(probes >= 100, `probed throughout (${probes} probes)`);
  // The reader drains: the rest of the data flows.
  t.stack.input(appSegment({ flags: ACK, seq: 1001, ack: t.una, window: 512 }), 2 * HOUR + 1);
  const data = t.sent.map((p) => parseOut(p)).filter((s) => s.payloadLength > 0);
  assertEquals(data[0]?.seq, t.una, "sending resumes where the window closed");
});

Deno.test("persist: a reader that stops answering probes is reset within the retransmission give-up", () => {
  const t = stalledReader();
  const answeredUntil = HOUR;
  let resetAt = 0;
  runClock(t, 4, answeredUntil + HOUR, (now) => {
    for (const packet of t.sent.splice(0)) {
      if (parseOut(packet).flags & RST) resetAt ||= now;
      else if (now < answeredUntil) {
        t.stack.input(appSegment({ flags: ACK, seq: 1001, ack: t.una, window: 0 }), now);
      }
    }
  });
  assert(resetAt > answeredUntil, "not reset while the probes were answered");
  const silentFor = resetAt - answeredUntil;
  assert(
    silentFor > MINUTE && silentFor < 20 * MINUTE,
    `reset ${Math.round(silentFor / 1000)} s after the last answer`,
  );
  assertEquals(t.closed, [[t.id, "timeout"]]);
});
