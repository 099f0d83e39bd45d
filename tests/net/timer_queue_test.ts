/** The stack's lazy timer heap (core/net/timer_queue.ts). */
import { assertEquals } from "../assert.ts";
import { TimerQueue } from "../../core/net/timer_queue.ts";

const owners = (n: number) => Array.from({ length: n }, (_, i) => ({ i }));

function popAll(queue: TimerQueue<{ i: number }>, now: number): number[] {
  const out: number[] = [];
  queue.popDue(now, (owner) => out.push(owner.i));
  return out;
}

Deno.test("timer queue: owners come due in deadline order, each once", () => {
  const queue = new TimerQueue<{ i: number }>();
  const all = owners(1000);
  // A fixed shuffle of deadlines 1..1000.
  for (const owner of all) queue.schedule(owner, 1 + ((owner.i * 7919) % 1000));
  assertEquals(popAll(queue, 0), []);
  const due = popAll(queue, 500);
  assertEquals(due.length, 500);
  const deadlines = due.map((i) => 1 + ((i * 7919) % 1000));
  assertEquals(deadlines, [...deadlines].sort((a, b) => a - b));
  assertEquals(queue.next(), 501);
  assertEquals(popAll(queue, Infinity).length, 500);
  assertEquals(queue.next(), undefined);
});

Deno.test("timer queue: an earlier deadline supersedes, a later one fires at the old time", () => {
  const queue = new TimerQueue<{ i: number }>();
  const [a, b, c] = owners(3);
  queue.schedule(a, 100);
  queue.schedule(a, 50); // earlier: the entry at 100 is dead
  queue.schedule(b, 100);
  queue.schedule(b, 300); // later: kept at 100, the owner reschedules when visited
  queue.schedule(c, 0); // no timer
  assertEquals(popAll(queue, 60), [0]);
  assertEquals(popAll(queue, 100), [1]); // a's dead entry at 100 is skipped
  assertEquals(popAll(queue, 1000), []);
  assertEquals(queue.size, 0);
  queue.schedule(a, 10); // an owner can be scheduled again after it fired
  assertEquals(popAll(queue, 10), [0]);
});
