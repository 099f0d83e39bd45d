/**
 * A stand-in for a long-running command whose shutdown hangs, for the signal tests: it traps the
 * stop signals, registers a forced-exit undo that writes `Deno.args[0]`, says READY and then
 * never finishes stopping on its own. With a second argument, `reject` or `throw`, it then fails
 * the way a bug would: a promise rejected with nobody awaiting it, or an exception from a timer.
 */
import { trapStopSignals } from "../../cli/session.ts";

const signals = trapStopSignals();
signals.onForcedExit(() => Deno.writeTextFileSync(Deno.args[0], "undone"));
console.log("READY");
if (Deno.args[1] === "reject") setTimeout(() => Promise.reject(new Error("a stray rejection")), 50);
if (Deno.args[1] === "throw") {
  setTimeout(() => {
    throw new Error("a stray exception");
  }, 50);
}
await signals.runUntilStopped(() => new Promise(() => {}), 60_000);
