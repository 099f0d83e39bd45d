/**
 * Stop signals: a Ctrl-C delivered twice at once (as `deno task` does) is one stop; a later
 * second one forces the exit, but only after the synchronous undo ran; and the demo, stopped by
 * such a double signal or by its terminal closing (SIGHUP), restores the lab's resolv.conf byte for
 * byte. An uncaught error undoes the same changes before the process exits.
 */
import { assert, assertEquals, assertMatch } from "../assert.ts";
import { Lab, labTest, labUnavailable } from "../lab/lab.ts";
import { DEMO_RESOLV, MAIN, startDemo } from "../adversarial/harness.ts";

const STOPPER = new URL("./signals_stopper.ts", import.meta.url).pathname;

async function startStopper(marker: string, failure?: "reject" | "throw", nohup = false) {
  const stopper = [Deno.execPath(), "run", "-A", STOPPER, marker, ...(failure ? [failure] : [])];
  // Started as `nohup` starts it: SIGHUP ignored (exec keeps the pid the one signalled).
  const command = nohup ? ["sh", "-c", 'trap "" HUP; exec "$@"', "sh", ...stopper] : stopper;
  const child = new Deno.Command(command[0], {
    args: command.slice(1),
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const reader = child.stdout.getReader();
  const { value } = await reader.read();
  assertEquals(new TextDecoder().decode(value).trim(), "READY");
  reader.releaseLock();
  return child;
}

Deno.test("cli: two signals within a second are one stop; a later one forces the exit after the undo", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const marker = `${dir}/undone`;
    const child = await startStopper(marker);
    child.kill("SIGINT");
    await new Promise((r) => setTimeout(r, 20));
    child.kill("SIGINT"); // the same Ctrl-C, forwarded by a parent
    await new Promise((r) => setTimeout(r, 500));
    let exited = false;
    child.status.then(() => exited = true);
    await new Promise((r) => setTimeout(r, 50));
    assertEquals(exited, false, "the duplicate signal did not force the exit");
    await new Promise((r) => setTimeout(r, 700));
    child.kill("SIGINT");
    const status = await child.status;
    assertEquals(status.code, 130);
    assertEquals(await Deno.readTextFile(marker), "undone", "the undo ran before the exit");
    const stderr = new TextDecoder().decode(
      (await new Response(child.stderr).arrayBuffer()) as ArrayBuffer,
    );
    assertMatch(stderr, /forced exit; undoing system changes first/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli: SIGHUP stops a command, unless it was started with SIGHUP ignored (nohup)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const hungUp = await startStopper(`${dir}/a`);
    hungUp.kill("SIGHUP");
    await new Promise((r) => setTimeout(r, 300));
    hungUp.kill("SIGHUP"); // a second one, past the same-signal second, forces the exit
    await new Promise((r) => setTimeout(r, 900));
    hungUp.kill("SIGHUP");
    assertEquals((await hungUp.status).code, 130);
    assertEquals(await Deno.readTextFile(`${dir}/a`), "undone");

    const nohup = await startStopper(`${dir}/b`, undefined, true);
    nohup.kill("SIGHUP");
    let exited = false;
    nohup.status.then(() => exited = true);
    await new Promise((r) => setTimeout(r, 500));
    assertEquals(exited, false, "a nohup'ed command outlives its terminal");
    nohup.kill("SIGTERM");
    await new Promise((r) => setTimeout(r, 1100));
    nohup.kill("SIGTERM");
    assertEquals((await nohup.status).code, 130);
    await nohup.stderr.cancel();
    await hungUp.stderr.cancel();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

for (const failure of ["reject", "throw"] as const) {
  Deno.test(`cli: an uncaught ${failure === "reject" ? "rejection" : "exception"} is reported, the undo runs, the exit is 70`, async () => {
    const dir = await Deno.makeTempDir();
    try {
      const marker = `${dir}/undone`;
      const child = await startStopper(marker, failure);
      const status = await child.status;
      assertEquals(status.code, 70);
      assertEquals(await Deno.readTextFile(marker), "undone", "the undo ran before the exit");
      const stderr = new TextDecoder().decode(
        (await new Response(child.stderr).arrayBuffer()) as ArrayBuffer,
      );
      assertMatch(stderr, /k8stun: internal error: Error: a stray (rejection|exception)/);
      assertMatch(stderr, /undoing system changes and exiting/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test({
  name: "cli: the demo stopped by a doubled Ctrl-C (deno task) restores resolv.conf byte for byte",
  ignore: labUnavailable() !== undefined,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    // The terminal's Ctrl-C and the copy `deno task` forwards arrive a moment apart.
    for (const apartMs of [10, 60, 250]) {
      await using lab = await Lab.create({ resolvConf: DEMO_RESOLV });
      const k8stun = await startDemo(lab, ["--dns-mode", "forward"]);
      const changed = await Deno.readTextFile(lab.resolvConfPath);
      assertEquals(changed === DEMO_RESOLV, false, "forward mode changed resolv.conf");
      k8stun.signal("SIGINT");
      await new Promise((r) => setTimeout(r, apartMs));
      k8stun.signal("SIGINT");
      const status = await k8stun.status;
      assertEquals(status.code, 0, k8stun.output);
      assertEquals(await Deno.readTextFile(lab.resolvConfPath), DEMO_RESOLV);
    }
  },
});

labTest(
  "cli: the demo whose terminal closes (SIGHUP) stops in order and restores resolv.conf",
  async (lab) => {
    const k8stun = await startDemo(lab, ["--dns-mode", "forward"]);
    assertEquals(await Deno.readTextFile(lab.resolvConfPath) === DEMO_RESOLV, false);
    k8stun.signal("SIGHUP");
    const status = await k8stun.status;
    assertEquals(status.code, 0, k8stun.output);
    assertMatch(k8stun.output, /stopping/);
    assertEquals(await Deno.readTextFile(lab.resolvConfPath), DEMO_RESOLV);
  },
  { resolvConf: DEMO_RESOLV },
);

labTest(
  "cli: the demo whose output pipe is gone (its reader exited) still serves, logs nothing, and undoes its changes when stopped",
  async (lab) => {
    // The demo writes into a FIFO whose reader takes 300 bytes and exits: every later write to
    // stdout or stderr fails (EPIPE). `exec` keeps the demo's pid the one signalled.
    const fifo = `${lab.dir}/output`;
    const k8stun = lab.spawn("sh", [
      "-c",
      `mkfifo ${fifo} && (head -c 300 < ${fifo} > /dev/null &) && ` +
      `exec ${Deno.execPath()} run -A ${MAIN} demo --dns-mode forward --log-level debug ` +
      `--http 8799 > ${fifo} 2>&1`,
    ]);
    let health;
    for (const deadline = Date.now() + 60_000; Date.now() < deadline;) {
      health = await lab.run("curl", ["-s", "--max-time", "2", "http://127.0.0.1:8799/healthz"]);
      if (health.code === 0) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    assertMatch(health?.stdout ?? "", /"tun":"up"/, "the demo came up with its output gone");
    const curl = await lab.run("curl", ["-sS", "--max-time", "3", "http://hello.demo/"]);
    assertMatch(curl.stdout, /^hello from/, curl.stderr); // logged at debug: into the broken pipe
    k8stun.signal("SIGINT");
    const status = await k8stun.status;
    assertEquals(status.code, 0);
    assertEquals(await Deno.readTextFile(lab.resolvConfPath), DEMO_RESOLV);
  },
  { resolvConf: DEMO_RESOLV },
);

labTest(
  "cli: Ctrl-Z (SIGTSTP) does not suspend the demo — a stopped k8stun would answer no DNS — and says so",
  async (lab) => {
    const k8stun = await startDemo(lab, ["--dns-mode", "forward"]);
    k8stun.signal("SIGTSTP");
    await k8stun.waitForOutput(/not suspending \(Ctrl-Z\)/, 5_000);
    const state = /^State:\s+(\S)/m.exec(await Deno.readTextFile(`/proc/${k8stun.pid}/status`))
      ?.[1];
    assert(state !== "T", "the process is not stopped");
    const dig = await lab.run("dig", ["+short", "+time=2", "+tries=1", "hello.demo"]);
    assertMatch(dig.stdout, /^198\.1[89]\./, "DNS still answers");
    k8stun.signal("SIGINT");
    assertEquals((await k8stun.status).code, 0);
  },
  { resolvConf: DEMO_RESOLV },
);
