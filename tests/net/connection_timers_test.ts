/** One connection's deadlines (core/net/tcp/timers.ts), which the stack's timer heap follows. */
import { assert, assertEquals } from "../assert.ts";
import { ConnectionTimers } from "../../core/net/tcp/timers.ts";

Deno.test("connection timers: the next deadline is the earliest armed one; 0 when none is", () => {
  const timers = new ConnectionTimers();
  assertEquals(timers.next(), 0);
  timers.arm("idle", 300_000);
  timers.arm("retransmit", 1200);
  timers.arm("persist", 900);
  assertEquals(timers.next(), 900);
  timers.cancel("persist");
  assertEquals(timers.next(), 1200);
  assert(!timers.isArmed("persist"));
  timers.arm("close", 0); // arming at 0 is cancelling
  assertEquals(timers.next(), 1200);
});

Deno.test("connection timers: a timer is due from its deadline on, and never while off", () => {
  const timers = new ConnectionTimers();
  assert(!timers.isDue("probe", Number.MAX_SAFE_INTEGER));
  timers.arm("probe", 50);
  assert(!timers.isDue("probe", 49));
  assert(timers.isDue("probe", 50));
  assert(!timers.isDue("retransmit", 50));
});
