/**
 * A stand-in for a long-running command whose shutdown hangs, for the signal tests: it traps the
 * stop signals, registers a forced-exit undo that writes `Deno.args[0]`, says READY and then
 * never finishes stopping on its own.
 */
import { trapStopSignals } from "../../cli/session.ts";

const signals = trapStopSignals();
signals.onForcedExit(() => Deno.writeTextFileSync(Deno.args[0], "undone"));
console.log("READY");
await signals.runUntilStopped(() => new Promise(() => {}), 60_000);
