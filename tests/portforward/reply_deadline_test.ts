/**
 * The deadline for the kubelet's answer to a new connection
 * (plugins/portforward/reply_deadline.ts): it expires only once a ping sent at the limit was echoed with the answer still missing, or when
 * no echo comes within another limit — never while the answer waits unread behind a busy thread.
 */
import { assert, assertEquals } from "../assert.ts";
import { ReplyDeadline } from "../../plugins/portforward/reply_deadline.ts";

const LIMIT = 100;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Resolves as soon as the deadline has sent its ping (the limit passed). */
async function pinged(state: { sent: number }): Promise<void> {
  const giveUp = performance.now() + 20 * LIMIT;
  while (state.sent === 0) {
    if (performance.now() > giveUp) throw new Error("the deadline never pinged");
    await sleep(5);
  }
}

/** A ping whose echo the test releases; counts the pings sent. */
function controlledPing() {
  const state = { sent: 0, echo: () => {}, fail: (_: Error) => {} };
  const ping = () =>
    new Promise<void>((resolve, reject) => {
      state.sent++;
      state.echo = resolve;
      state.fail = reject;
    });
  return { state, ping };
}

Deno.test("reply deadline: an answer that arrives in time cancels it; no ping is sent and it never expires", async () => {
  const { state, ping } = controlledPing();
  let expired = 0;
  const deadline = new ReplyDeadline(LIMIT, ping, () => expired++);
  await sleep(0);
  deadline.cancel();
  await sleep(3 * LIMIT);
  assertEquals([state.sent, expired], [0, 0]);
});

Deno.test("reply deadline: at the limit it pings, and expires once the echo is read with the answer still missing", async () => {
  const { state, ping } = controlledPing();
  let expired = 0;
  const started = performance.now();
  new ReplyDeadline(LIMIT, ping, () => expired++);
  await pinged(state);
  assert(performance.now() - started >= LIMIT - 2, "pinged before the limit");
  assertEquals(expired, 0, "the limit alone does not expire it");
  state.echo();
  await sleep(0);
  assertEquals(expired, 1);
  await sleep(2 * LIMIT);
  assertEquals(expired, 1, "expires once");
});

Deno.test("reply deadline: an answer read after the limit but before the echo (a busy thread) keeps the connection", async () => {
  const { state, ping } = controlledPing();
  let expired = 0;
  const deadline = new ReplyDeadline(LIMIT, ping, () => expired++);
  await pinged(state);
  // What a busy thread reads in order: the answer that was waiting, then the echo.
  deadline.cancel();
  state.echo();
  await sleep(2 * LIMIT);
  assertEquals(expired, 0);
});

Deno.test("reply deadline: no echo within another limit (the link is gone), or a ping that cannot be sent, expires it", async () => {
  const silent = controlledPing();
  let expired = 0;
  const started = performance.now();
  let expiredAfter = 0;
  new ReplyDeadline(LIMIT, silent.ping, () => {
    expired++;
    expiredAfter = performance.now() - started;
  });
  await sleep(3 * LIMIT);
  assertEquals(expired, 1);
  assert(expiredAfter >= 2 * LIMIT - 2, `expired after ${expiredAfter} ms`);

  let thrown = 0;
  new ReplyDeadline(LIMIT, () => {
    throw new Error("WebSocket is not open");
  }, () => thrown++);
  const rejected = controlledPing();
  let failed = 0;
  new ReplyDeadline(LIMIT, rejected.ping, () => failed++);
  await pinged(rejected.state);
  rejected.state.fail(new Error("closed"));
  await sleep(LIMIT);
  assertEquals([thrown, failed], [1, 1]);
});
