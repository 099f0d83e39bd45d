/**
 * `k8stun demo` in a lab namespace, driven by real clients: the commands the demo prints must
 * work (docs/compatibility.md §3, §4), the API must show them, and stopping or killing k8stun must
 * leave the lab's resolv.conf and interfaces as they were (docs/compatibility.md §3 D16, D17).
 */
import { assert, assertEquals, assertMatch } from "../assert.ts";
import { Lab, labUnavailable } from "../lab/lab.ts";

const ignore = labUnavailable() !== undefined;
const MAIN = new URL("../../cli/main.ts", import.meta.url).pathname;
const RESOLV = "nameserver 127.0.0.1\noptions ndots:1 timeout:1\n";

async function startDemo(lab: Lab, ...flags: string[]) {
  const k8stun = lab.spawn(Deno.execPath(), ["run", "-A", MAIN, "demo", ...flags]);
  await k8stun.waitForOutput(/k8stun is ready on (\S+)/, 60_000);
  return k8stun;
}

Deno.test({
  name: "e2e: the demo's printed commands work through the TUN by name",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using lab = await Lab.create({ resolvConf: RESOLV });
    const k8stun = await startDemo(lab, "--http", "8790");

    const pods = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const curl = await lab.run("curl", ["-s", "-m", "5", "http://hello.demo/"]);
      assertEquals(curl.code, 0, curl.stderr);
      pods.add(/hello from (\S+)/.exec(curl.stdout)![1]);
    }
    assertEquals(pods.size, 2, "sequential connections spread over both ready pods");
    const fqdn = await lab.run("curl", ["-s", "-m", "5", "http://hello.demo.svc.cluster.local/"]);
    assertMatch(fqdn.stdout, /^hello from hello-/);
    const svc = await lab.run("curl", ["-s", "-m", "5", "http://hello.demo.svc/"]);
    assertMatch(svc.stdout, /^hello from hello-/);

    const echo = await lab.sh("printf 'request-then-half-close' | nc -N echo.demo 7");
    assertEquals(echo.stdout, "request-then-half-close", "half-close keeps the response");
    const db = await lab.sh("printf 'x' | nc -N db-0.db.demo 5432");
    assertEquals(db.stdout, "db-0\nx", "StatefulSet pod by name");

    const a = await lab.run("dig", ["+short", "hello.demo"]);
    const vip = a.stdout.trim();
    assertMatch(vip, /^198\.1[89]\.\d+\.\d+$/);
    const again = await lab.run("dig", ["+short", "hello.demo"]);
    assertEquals(again.stdout.trim(), vip, "one VIP per service");
    const aaaa = await lab.run("dig", ["AAAA", "hello.demo"]);
    assertMatch(aaaa.stdout, /status: NOERROR/);
    assertMatch(aaaa.stdout, /ANSWER: 0,/);
    const missing = await lab.run("dig", ["nosuch.demo"]);
    assertMatch(missing.stdout, /status: NXDOMAIN/);
    const ptr = await lab.run("dig", ["+short", "-x", vip]);
    assertEquals(ptr.stdout.trim(), "hello.demo.svc.cluster.local.");
    const tcp = await lab.run("dig", ["+tcp", "+short", "hello.demo"]);
    assertEquals(tcp.stdout.trim(), vip, "DNS over TCP");
    const getent = await lab.run("getent", ["hosts", "echo.demo"]);
    assertMatch(getent.stdout, /^198\.1[89]\.\d+\.\d+\s+echo\.demo/);

    const started = Date.now();
    const refused = await lab.run("curl", ["-s", "-m", "5", "http://hello.demo:9999/"]);
    assertEquals(refused.code, 7, "connection refused, not a hang");
    assert(Date.now() - started < 2000);
    const ping = await lab.run("ping", ["-c", "2", "-W", "2", vip]);
    assertEquals(ping.code, 0, ping.stdout);
    // UDP to a port k8stun does not serve is refused at once (ICMP), not left to time out.
    const closedUdp = await lab.run("dig", ["+tries=1", "+time=5", "-p", "9999", `@${vip}`, "x"]);
    assertMatch(closedUdp.stdout + closedUdp.stderr, /connection refused/);

    const vips = JSON.parse((await lab.run("curl", ["-s", "http://127.0.0.1:8790/vips"])).stdout);
    const row = vips.vips.find((v: { vip: string }) => v.vip === vip);
    assertEquals(row.target, { type: "service", name: "hello", namespace: "demo" });
    assert(row.stats.total_connections >= 12);

    k8stun.signal("SIGTERM");
    const stopping = Date.now();
    await k8stun.status;
    const stopMs = Date.now() - stopping;
    assert(stopMs < 1000, `SIGTERM to exit took ${stopMs} ms (issue #3: within 1 s)`);
    assertEquals(
      await Deno.readTextFile(lab.resolvConfPath),
      RESOLV,
      "resolv.conf restored byte for byte",
    );
    const links = await lab.run("ip", ["-br", "link"]);
    assert(!links.stdout.includes("tun"), "the TUN is gone");
  },
});

Deno.test({
  name:
    "e2e: after SIGKILL, k8stun cleanup restores resolv.conf; a second cleanup is a no-op; a run after a crash repairs first",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using lab = await Lab.create({ resolvConf: RESOLV });
    const k8stun = await startDemo(lab);
    assert((await Deno.readTextFile(lab.resolvConfPath)).includes("nameserver 127.0.0.153"));
    k8stun.signal("SIGKILL");
    await k8stun.status;
    const links = await lab.run("ip", ["-br", "link"]);
    assert(!links.stdout.includes("tun"), "the TUN vanishes with the process");
    const cleanup = await lab.run(Deno.execPath(), ["run", "-A", MAIN, "cleanup"]);
    assertEquals(cleanup.code, 0, cleanup.stderr);
    assertMatch(cleanup.stdout, /\/etc\/resolv\.conf: restored/);
    assertEquals(await Deno.readTextFile(lab.resolvConfPath), RESOLV);
    const second = await lab.run(Deno.execPath(), ["run", "-A", MAIN, "cleanup"]);
    assertEquals(second.stdout.trim(), "nothing to clean up");

    const crashed = await startDemo(lab, "--dns-mode", "forward");
    crashed.signal("SIGKILL");
    await crashed.status;
    const next = await startDemo(lab, "--dns-mode", "forward");
    assertMatch(next.output, /repaired a previous run: \/etc\/resolv\.conf: restored/);
    next.signal("SIGTERM");
    await next.status;
    assertEquals(await Deno.readTextFile(lab.resolvConfPath), RESOLV, next.output);
  },
});

Deno.test({
  name: "e2e: --dns-mode disabled leaves resolv.conf alone and VIPs work by address",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using lab = await Lab.create({ resolvConf: RESOLV });
    const k8stun = await startDemo(lab, "--dns-mode", "disabled");
    assertEquals(await Deno.readTextFile(lab.resolvConfPath), RESOLV);
    const vip = (await k8stun.waitForOutput(/curl http:\/\/(198\.\d+\.\d+\.\d+)\//, 10_000))[1];
    const curl = await lab.run("curl", ["-s", "-m", "5", `http://${vip}/`]);
    assertMatch(curl.stdout, /^hello from hello-/);
  },
});

Deno.test({
  name:
    "e2e: SIGTERM during start-up stops cleanly: resolv.conf as it was, no TUN left (docs/compatibility.md §3 D17)",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using lab = await Lab.create({ resolvConf: RESOLV });
    for (const after of [/simulated cluster at/, /TUN k8stun\d+ up/]) {
      const k8stun = lab.spawn(Deno.execPath(), [
        "run",
        "-A",
        MAIN,
        "demo",
        "--dns-mode",
        "forward",
      ]);
      await k8stun.waitForOutput(after, 60_000);
      k8stun.signal("SIGTERM");
      const status = await k8stun.status;
      assert([0, 130].includes(status.code), `exit ${status.code}: ${k8stun.output}`);
      assertEquals(await Deno.readTextFile(lab.resolvConfPath), RESOLV, k8stun.output);
      const links = await lab.run("ip", ["-br", "link"]);
      assert(!links.stdout.includes("tun"), links.stdout);
    }
  },
});
