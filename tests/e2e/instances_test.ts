/**
 * Two k8stuns in one lab (two clusters): each has its own TUN, VIP range, API record and
 * journal; `k8stun status` lists both; stopping either leaves the other's files and traffic as
 * they were; the one that owns DNS restores resolv.conf when it stops.
 */
import { assert, assertEquals, assertMatch } from "../assert.ts";
import { type Lab, type LabProcess, labTest } from "../lab/lab.ts";
import { DEMO_RESOLV, MAIN, startDemo } from "../adversarial/harness.ts";

/** The runtime directory's file names (the lab points K8STUN_RUNTIME_DIR there). */
/** The API records and journals in the lab's runtime dir (a demo's `demo-<pid>` dirs aside). */
async function runFileNames(lab: Lab): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const entry of Deno.readDir(lab.env.K8STUN_RUNTIME_DIR)) {
      if (!entry.name.startsWith("demo-")) names.push(entry.name);
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return names.sort();
}

async function status(lab: Lab, ...args: string[]) {
  const out = await lab.run(Deno.execPath(), ["run", "-A", MAIN, "status", ...args]);
  assertEquals(out.code, 0, out.stderr);
  return out.stdout;
}

/** The VIP a `--dns-mode disabled` demo prints for hello.demo. */
async function printedVip(k8stun: LabProcess): Promise<string> {
  return (await k8stun.waitForOutput(/curl http:\/\/(\d+\.\d+\.\d+\.\d+)\//, 10_000))[1];
}

async function curlOk(lab: Lab, url: string): Promise<void> {
  const curl = await lab.run("curl", ["-s", "-m", "5", url]);
  assertMatch(curl.stdout, /^hello from hello-/, `${url}: ${curl.stderr}`);
}

/** `text` as a literal inside a regular expression. */
const literal = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

async function stop(k8stun: LabProcess): Promise<void> {
  k8stun.signal("SIGTERM");
  await k8stun.status;
}

labTest(
  "instances: two k8stuns run side by side with their own TUN, VIP range, record and journal, and stopping one leaves the other intact",
  async (lab) => {
    const first = await startDemo(lab, ["--dns-mode", "forward", "--http", "8791"]);
    const journal = `journal-${first.pid}.json`;
    assert((await runFileNames(lab)).includes(journal), "forward mode journals resolv.conf");
    // The second start-up's repair must leave the running first's journal alone.
    const second = await startDemo(lab, ["--dns-mode", "disabled", "--http", "8792"]);
    assertEquals(
      await runFileNames(lab),
      [`api-${first.pid}.json`, `api-${second.pid}.json`, journal].sort(),
    );
    assert(!second.output.includes("repaired a previous run"), second.output);

    const tun = (k8stun: LabProcess) => /k8stun is ready on (\S+)/.exec(k8stun.output)![1];
    assertEquals([tun(first), tun(second)], ["k8stun0", "k8stun1"]);
    assertMatch(first.output, /route 198\.18\.0\.0\/15/);
    assertMatch(second.output, /VIP range 198\.18\.0\.0\/15 is already routed to k8stun0/);
    assertMatch(second.output, /route 100\.127\.0\.0\/16/);
    const secondVip = await printedVip(second);
    assertMatch(secondVip, /^100\.127\./);
    await curlOk(lab, "http://hello.demo/"); // the first, by name through its DNS
    await curlOk(lab, `http://${secondVip}/`);

    const both = await status(lab);
    for (
      const [k8stun, port, range] of [[first, 8791, "198.18.0.0/15"], [
        second,
        8792,
        "100.127.0.0/16",
      ]] as const
    ) {
      assertMatch(
        both,
        new RegExp(
          `k8stun pid ${k8stun.pid}: context k8stun-sim, ${tun(k8stun)}, VIPs ${
            literal(range)
          }, API http://127\\.0\\.0\\.1:${port}`,
        ),
      );
    }
    assertEquals(both.match(/^VIP\s+TARGET/gm)?.length, 2, both);
    assertMatch(both, new RegExp(`${literal(secondVip)}\\s+service demo/hello`));
    const one = await status(lab, "--pid", String(second.pid));
    assert(!one.includes("k8stun pid"), "one instance: its table, as before");
    assertMatch(one, new RegExp(`^VIP\\s+TARGET[^]*${literal(secondVip)}\\s+service demo/hello`));
    const json = await lab.run(Deno.execPath(), ["run", "-A", MAIN, "status", "--json"]);
    assertEquals(json.code, 1);
    assertMatch(
      json.stderr,
      new RegExp(
        `2 k8stuns are running \\(pids ${first.pid}, ${second.pid}\\); pick one with --pid`,
      ),
    );

    // Stopping the second leaves the first's record and journal, and the first keeps working.
    await stop(second);
    assertEquals(await runFileNames(lab), [`api-${first.pid}.json`, journal]);
    await curlOk(lab, "http://hello.demo/");
    const cleanup = await lab.run(Deno.execPath(), ["run", "-A", MAIN, "cleanup"]);
    assertEquals(
      cleanup.stdout.trim(),
      `k8stun (pid ${first.pid}) is running: its changes are left to it (stop it first)`,
    );
    assertEquals(await runFileNames(lab), [`api-${first.pid}.json`, journal]);
    assertMatch(await Deno.readTextFile(lab.resolvConfPath), /nameserver 127\.0\.0\.153/);

    // Stopping the first (the one owning DNS) leaves a third's record and traffic alone.
    const third = await startDemo(lab, ["--dns-mode", "disabled", "--http", "8793"]);
    const thirdVip = await printedVip(third);
    await stop(first);
    assertEquals(await Deno.readTextFile(lab.resolvConfPath), DEMO_RESOLV, "resolv.conf restored");
    assertEquals(await runFileNames(lab), [`api-${third.pid}.json`]);
    await curlOk(lab, `http://${thirdVip}/`);
    const single = await status(lab);
    assertMatch(single, new RegExp(`^VIP\\s+TARGET[^]*${literal(thirdVip)}\\s+service demo/hello`));
    await stop(third);
    assertEquals(await runFileNames(lab), []);
  },
  { resolvConf: DEMO_RESOLV },
);

labTest(
  "instances: a second k8stun that would own DNS too is refused with a clear error",
  async (lab) => {
    const first = await startDemo(lab, ["--dns-mode", "forward"]);
    const second = await lab.run(Deno.execPath(), [
      "run",
      "-A",
      MAIN,
      "demo",
      "--dns-mode",
      "forward",
    ]);
    assertEquals(second.code, 1, second.stdout);
    assertMatch(
      second.stderr,
      /127\.0\.0\.153:53 is taken: another k8stun .* start this one with --dns-mode disabled/,
    );
    assertEquals((await lab.run("ip", ["-br", "link"])).stdout.match(/k8stun\d/g), ["k8stun0"]);
    await curlOk(lab, "http://hello.demo/");
    await stop(first);
    assertEquals(await Deno.readTextFile(lab.resolvConfPath), DEMO_RESOLV);
  },
  { resolvConf: DEMO_RESOLV },
);
