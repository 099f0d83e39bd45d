/**
 * The MSS a connection sends with comes from the app's SYN, bounded (RFC 9293 §3.7.1, RFC 6691,
 * core/net/tcp/mss.ts): 536 when absent, at least 88, at most what our MTU allows.
 */
import { assert, assertEquals } from "../assert.ts";
import { ACK } from "../../core/net/wire/tcp.ts";
import { appSegment, establishedStack, parseOut } from "./packets.ts";

/** Sizes of the data segments a 20,000-byte send leaves in, with the SYN's MSS `mss`. */
function segmentSizes(mss: number | undefined, mtu = 1500): number[] {
  const t = establishedStack({ mss, mtu, window: 1024 });
  t.budget(10_000); // a send stuck in a loop throws instead of hanging the test
  let una = t.una;
  const sizes: number[] = [];
  let now = 2;
  assertEquals(t.stack.send(t.id, new Uint8Array(20_000), now), 20_000);
  while (sizes.reduce((a, b) => a + b, 0) < 20_000) {
    const data = t.sent.map((p) => parseOut(p)).filter((s) => s.payloadLength > 0);
    assert(data.length > 0, `the transfer stalled after ${sizes.length} segments`);
    for (const segment of data) {
      sizes.push(segment.payloadLength);
      una = (segment.seq + segment.payloadLength) >>> 0;
    }
    t.sent.length = 0;
    t.stack.input(appSegment({ flags: ACK, seq: 1001, ack: una, window: 1024 }), ++now);
    t.stack.poll(++now);
  }
  assert(!t.ranAway());
  return sizes;
}

Deno.test("mss: a SYN with MSS 0 gets data in segments of 88 bytes, not an endless loop of empty ones", () => {
  const sizes = segmentSizes(0);
  assertEquals(sizes.reduce((a, b) => a + b, 0), 20_000);
  assert(sizes.slice(0, -1).every((n) => n === 88), `sizes ${[...new Set(sizes)]}`);
});

Deno.test("mss: a SYN with MSS 1 is raised to the 88-byte floor", () => {
  assertEquals(Math.min(...segmentSizes(1).slice(0, -1)), 88);
});

Deno.test("mss: a SYN without an MSS option gets 536-byte segments (RFC 9293 §3.7.1)", () => {
  assertEquals(Math.max(...segmentSizes(undefined)), 536);
});

Deno.test("mss: a SYN with MSS 65535 gets segments no larger than our MTU allows", () => {
  assertEquals(Math.max(...segmentSizes(65535, 1500)), 1460);
  assertEquals(Math.max(...segmentSizes(65535, 576)), 536);
});
