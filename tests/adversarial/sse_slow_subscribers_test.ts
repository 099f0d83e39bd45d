/**
 * `/events` under subscribers that never read: a cap on how many may be open, a bounded queue per
 * subscriber (one that falls behind is dropped), a reader that keeps up gets every event, and a
 * dropped subscriber resumes from the replay ring with `Last-Event-ID`.
 */
import { isolateMemory } from "./harness.ts";
import { assert, assertEquals, assertMatch } from "../assert.ts";
import { SseReader, startTestApi } from "../api/support.ts";

const MiB = 1024 * 1024;
const EVENTS = 2_000;
/** ~8 KiB per event: the burst is ~16 MiB per subscriber, far past kernel buffers and queue. */
const MESSAGE = "x".repeat(8 * 1024);

/** A raw `/events` client that reads the response head and then nothing. */
async function stalledSubscriber(port: number): Promise<{ conn: Deno.Conn; head: string }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(
    new TextEncoder().encode(`GET /events HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`),
  );
  const buffer = new Uint8Array(1024);
  const n = await conn.read(buffer);
  return { conn, head: new TextDecoder().decode(buffer.subarray(0, n ?? 0)) };
}

/**
 * Reads what a stalled subscriber was sent until the server ends the response (the last chunk of
 * a chunked body, RFC 9112 §7.1) or the connection, or `limitMs` passes.
 */
async function drain(conn: Deno.Conn, limitMs = 5_000): Promise<{ text: string; ended: boolean }> {
  const buffer = new Uint8Array(256 * 1024);
  const decoder = new TextDecoder();
  let text = "";
  const timer = setTimeout(() => conn.close(), limitMs);
  let ended = false;
  try {
    while (!text.endsWith("\r\n0\r\n\r\n")) {
      const n = await conn.read(buffer);
      if (n === null) break;
      text += decoder.decode(buffer.subarray(0, n), { stream: true });
    }
    ended = true;
  } catch (error) {
    ended = !(error instanceof Deno.errors.BadResource); // reset by the server, not our timer
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch {
      // closed by the timer
    }
  }
  return { text, ended };
}

Deno.test({
  name:
    "sse: 50 subscribers that never read are capped and dropped when their queue fills; a reader gets every event; a dropped one resumes with Last-Event-ID",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using api = await startTestApi({ ringSize: 4 * EVENTS });
    const port = api.server.port;
    const reader = new SseReader(await fetch(`${api.server.url}/events`));
    assertEquals((await reader.next()).retry, "3000");
    const snapshot = await reader.next();
    assertMatch(snapshot.data ?? "", /"snapshot"/);

    const stalled = await Promise.all(Array.from({ length: 50 }, () => stalledSubscriber(port)));
    const accepted = stalled.filter((s) => s.head.startsWith("HTTP/1.1 200"));
    const refused = stalled.filter((s) => s.head.startsWith("HTTP/1.1 503"));
    assertEquals(accepted.length, 31, "the reader plus 31 stalled make the cap of 32");
    assertEquals(refused.length, 19);
    assertMatch(refused[0].head, /too many \/events subscribers \(32 open\)/);
    for (const s of refused) s.conn.close();

    const memoryBefore = isolateMemory();
    let memoryMax = memoryBefore;
    const firstId = api.state.lastEventId + 1;
    let seen = firstId - 1;
    const reading = (async () => {
      while (seen < firstId + EVENTS - 1) {
        const message = await reader.next(10_000);
        assertEquals(Number(message.id), seen + 1, "the reader missed or reordered an event");
        seen++;
      }
    })();
    for (let i = 0; i < EVENTS; i++) {
      api.state.emit({
        type: "dial_error",
        target: `pod/demo/p${i}`,
        reason: "refused",
        message: MESSAGE,
      });
      // Paced by the reader (about half a megabyte ahead of it), so only the stalled fall behind.
      while (api.state.lastEventId - seen > 60) await new Promise((r) => setTimeout(r, 1));
      if (i % 100 === 0) memoryMax = Math.max(memoryMax, isolateMemory());
    }
    await reading;
    memoryMax = Math.max(memoryMax, isolateMemory());
    console.log(
      `burst of ${EVENTS} × 8 KiB: JS memory +${((memoryMax - memoryBefore) / MiB).toFixed(0)} MiB`,
    );
    assert(
      memoryMax - memoryBefore < 200 * MiB,
      `JS memory grew by ${memoryMax - memoryBefore} bytes`,
    );

    // The stalled were dropped: their streams end (after what the kernel held), and their
    // places are free again.
    const drained = await Promise.all(accepted.map((s) => drain(s.conn)));
    assertEquals(drained.filter((d) => d.ended).length, 31, "a stalled subscriber was kept");
    const lastIds = drained.map((d) => Number([...d.text.matchAll(/id: (\d+)\n/g)].at(-1)?.[1]));
    assert(lastIds.every((id) => id < firstId + EVENTS - 1), "a stalled subscriber got it all");
    const again = await Promise.all(
      Array.from({ length: 31 }, () => fetch(`${api.server.url}/events`)),
    );
    assertEquals(again.filter((r) => r.status === 200).length, 31);
    await Promise.all(again.map((r) => r.body?.cancel()));

    // A dropped subscriber reconnects with the last id it got: the rest is replayed, in order.
    const resumeFrom = Math.min(...lastIds);
    const resumed = new SseReader(
      await fetch(`${api.server.url}/events`, { headers: { "last-event-id": String(resumeFrom) } }),
    );
    assertEquals((await resumed.next()).retry, "3000");
    for (let id = resumeFrom + 1; id <= firstId + EVENTS - 1; id++) {
      assertEquals(Number((await resumed.next()).id), id);
    }
    await resumed.cancel();
    await reader.cancel();
  },
});
