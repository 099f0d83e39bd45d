/** `bin/k8stun demo` as a new user meets it: its hints, warnings and what it leaves behind. */
import { assert, assertEquals, assertMatch } from "../assert.ts";
import { Lab, labUnavailable } from "../lab/lab.ts";
import { LAUNCHER, warmLauncher } from "./launcher.ts";

const ignore = labUnavailable() !== undefined;
const RESOLV = "nameserver 127.0.0.1\noptions ndots:1 timeout:1\n";

const FIXTURE = {
  namespaces: [{
    name: "shop",
    services: [
      { name: "web", selector: { app: "web" }, ports: [{ port: 80, targetPort: 8080 }] },
      { name: "empty", selector: { app: "nothing" }, ports: [{ port: 80, targetPort: 80 }] },
      { name: "queue", selector: { app: "web" }, ports: [{ port: 5672, targetPort: 8080 }] },
    ],
    pods: [{
      name: "web-0",
      labels: { app: "web" },
      ports: [{ containerPort: 8080, serve: "http" }],
    }],
  }],
};

async function entries(dir: string, pattern: RegExp): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) if (pattern.test(e.name)) names.push(e.name);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return names.sort();
}

Deno.test({
  name:
    "cli: demo --fixture suggests the fixture's commands, warns about a missing -n namespace, and names the target of a failed dial once",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await warmLauncher();
    await using lab = await Lab.create({ resolvConf: RESOLV });
    const fixture = `${lab.dir}/shop.json`;
    await Deno.writeTextFile(fixture, JSON.stringify(FIXTURE));
    const demo = lab.spawn(LAUNCHER, ["demo", "--fixture", fixture, "-n", "nosuch,shop"]);
    await demo.waitForOutput(/k8stun is ready on/, 60_000);
    await demo.waitForOutput(/nc queue\.shop 5672\n/, 5_000);
    assertMatch(demo.output, /^ {2}curl http:\/\/web\.shop\/$/m);
    assertMatch(demo.output, /^ {2}nc queue\.shop 5672$/m);
    assert(!demo.output.includes("hello.demo"), demo.output);
    assertMatch(demo.output, /warning: -n nosuch: no such namespace/);
    assert(!/warning: -n shop/.test(demo.output), demo.output);

    const web = await lab.run("curl", ["-s", "-m", "5", "http://web.shop/"]);
    assertEquals(web.code, 0, web.stderr);
    await lab.run("curl", ["-s", "-m", "5", "http://empty.shop/"]);
    await demo.waitForOutput(/empty:80 has no ready endpoints/, 10_000);
    assertMatch(demo.output, /[^e] service shop\/empty:80 has no ready endpoints/);
    assert(!demo.output.includes("service service"), demo.output);
    demo.signal("SIGTERM");
    await demo.status;
  },
});

Deno.test({
  name:
    "cli: a killed demo's directory is in the runtime dir and cleanup removes it; demo runs share one VIP state file",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await warmLauncher();
    await using lab = await Lab.create({ resolvConf: RESOLV });
    const runtime = lab.env.K8STUN_RUNTIME_DIR;
    const state = `${lab.env.XDG_STATE_HOME}/k8stun`;
    for (let run = 0; run < 2; run++) {
      const demo = lab.spawn(LAUNCHER, ["demo"]);
      await demo.waitForOutput(/k8stun is ready on/, 60_000);
      const dirs = await entries(runtime, /^demo-\d+$/);
      assertEquals(dirs.length, 1, `run ${run}: ${dirs}`);
      demo.signal("SIGKILL");
      await demo.status;
    }
    assertEquals((await entries(state, /^vips-.*\.json$/)).length, 1, "one VIP state file");
    // The second start cleaned up after the first; the second's directory is left to cleanup.
    assertEquals((await entries(runtime, /^demo-\d+$/)).length, 1, "a killed demo leaves its own");
    const cleanup = await lab.run(LAUNCHER, ["cleanup"]);
    assertEquals(cleanup.code, 0, cleanup.stderr);
    assertMatch(cleanup.stdout, /demo-\d+: removed \(the directory of a k8stun demo/);
    assertEquals(await entries(runtime, /^demo-\d+$/), []);
  },
});
