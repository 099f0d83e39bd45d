/**
 * `--idle-timeout`: an idle connection is closed the way a server closes one — a FIN, so the app
 * reads EOF — and only an app that does not close its side within the grace is reset.
 */
import { assert, assertEquals } from "../assert.ts";
import { ACK, FIN, RST } from "../../core/net/wire/tcp.ts";
import { appSegment, establishedStack, parseOut } from "./packets.ts";

Deno.test("idle close: the app gets a FIN (EOF), closes, and the flow ends as closed, not reset", () => {
  const t = establishedStack({ idleTimeoutMs: 1000 });
  for (let now = 2; now <= 1500; now += 100) t.stack.poll(now);
  const fin = parseOut(t.sent.at(-1)!);
  assert(fin.flags & FIN, "a FIN went out");
  assertEquals(fin.flags & RST, 0);
  assertEquals(t.closed, [], "the flow is not ended yet: the app answers first");
  t.stack.input(appSegment({ flags: ACK | FIN, seq: 1001, ack: (fin.seq + 1) >>> 0 }), 1600);
  assertEquals(t.eofs, [t.id]);
  for (let now = 1600; now <= 10_000; now += 500) t.stack.poll(now);
  assertEquals(t.closed, [[t.id, "closed"]]);
  assert(!t.sent.some((p) => parseOut(p).flags & RST), "never a reset");
});

Deno.test("idle close: an app that never closes its side is reset after the grace", () => {
  const t = establishedStack({ idleTimeoutMs: 1000 });
  for (let now = 2; now <= 1500; now += 100) t.stack.poll(now);
  assert(parseOut(t.sent.at(-1)!).flags & FIN);
  for (let now = 1500; now <= 8000; now += 100) t.stack.poll(now);
  assertEquals(t.closed, [[t.id, "timeout"]]);
  assert(parseOut(t.sent.at(-1)!).flags & RST);
});
