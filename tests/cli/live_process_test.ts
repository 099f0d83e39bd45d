/**
 * Whether the k8stun that left a journal or API record still runs: a zombie — killed with -9 and
 * not yet reaped by its parent — does not (a new run must not refuse to start because of it).
 */
import { assertEquals } from "../assert.ts";
import { processRuns, processStartTime } from "../../core/live_process.ts";

Deno.test({
  name: "live process: a killed, unreaped process (a zombie) no longer runs; a live one does",
  ignore: Deno.build.os !== "linux",
  async fn() {
    // `sleep 0.1` is left unreaped by its parent, which execs into a longer sleep.
    const parent = new Deno.Command("sh", {
      args: ["-c", "sleep 0.1 & echo $!; exec sleep 5"],
      stdout: "piped",
    }).spawn();
    const reader = parent.stdout.getReader();
    const pid = Number(new TextDecoder().decode((await reader.read()).value).trim());
    reader.releaseLock();
    const startTime = processStartTime(pid);
    assertEquals(processRuns(pid, startTime), true, "running");
    await new Promise((resolve) => setTimeout(resolve, 400));
    assertEquals(Deno.readTextFileSync(`/proc/${pid}/stat`).includes(") Z "), true, "a zombie");
    assertEquals(processRuns(pid, startTime), false, "a zombie owns nothing");
    assertEquals(processRuns(Deno.pid, processStartTime()), true);
    parent.kill("SIGKILL");
    await parent.status;
    await parent.stdout.cancel().catch(() => {});
  },
});
