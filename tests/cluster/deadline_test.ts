/** `deadline()`: the work's result, or the caller's error once the time is up; nothing left behind. */
import { assertEquals, assertRejects } from "../assert.ts";
import { deadline } from "../../core/deadline.ts";

Deno.test("deadline: the work's value, its own failure, or the caller's error after the limit", async () => {
  assertEquals(await deadline(Promise.resolve(7), 1000, () => new Error("late")), 7);
  assertEquals(await deadline(() => 8, 1000, () => new Error("late")), 8);
  await assertRejects(() =>
    deadline(
      () => {
        throw new Error("own");
      },
      1000,
      () => new Error("late"),
    ), /own/);
  await assertRejects(
    () => deadline(new Promise(() => {}), 20, () => new RangeError("too late")),
    RangeError,
  );
  // The test's op sanitizer fails it if a timer were left running after a settled deadline.
});
