import { assertEquals } from "../assert.ts";
import { DeadlineQueue } from "../../core/dns/deadlines.ts";

const settle = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

Deno.test("dns deadlines: each fires once, earliest first across durations; a cancelled one never fires", async () => {
  const deadlines = new DeadlineQueue();
  const fired: string[] = [];
  deadlines.add(40, () => fired.push("40a"));
  const cancelled = deadlines.add(20, () => fired.push("20 cancelled"));
  deadlines.add(10, () => fired.push("10"));
  deadlines.add(40, () => fired.push("40b"));
  deadlines.add(20, () => fired.push("20"));
  cancelled.cancel();
  assertEquals(deadlines.pending, 4);
  // Late, as on a busy event loop: every one is due when the timer fires, and the order holds.
  const busyUntil = performance.now() + 60;
  while (performance.now() < busyUntil) { /* the main thread is busy */ }
  await settle(120);
  assertEquals(fired, ["10", "20", "40a", "40b"]);
  assertEquals(deadlines.pending, 0);
  cancelled.cancel(); // after the fact: no effect
});

Deno.test("dns deadlines: one set while another fires runs at its own time; clear stops them all", async () => {
  const deadlines = new DeadlineQueue();
  const fired: string[] = [];
  deadlines.add(5, () => {
    fired.push("first");
    deadlines.add(10, () => fired.push("second"));
  });
  deadlines.add(1000, () => fired.push("never"));
  await settle(80);
  assertEquals(fired, ["first", "second"]);
  deadlines.clear();
  assertEquals(deadlines.pending, 0);
});

Deno.test("dns deadlines: 100,000 set and cancelled leave nothing pending and no timer behind", () => {
  const deadlines = new DeadlineQueue();
  for (let i = 0; i < 100_000; i++) deadlines.add(60_000, () => {}).cancel();
  const last = deadlines.add(60_000, () => {});
  assertEquals(deadlines.pending, 1);
  last.cancel();
  assertEquals(deadlines.pending, 0);
  // No timer is left armed for them: the test's op sanitizer fails on a pending one.
});
