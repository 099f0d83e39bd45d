/**
 * DNS honesty and patience: forwarding is as patient as the system's own resolver
 * (resolv.conf `options timeout: attempts:`), and when tun_route cannot be used the banner and
 * `/healthz` say that forward is in effect, and why.
 */
import { assertEquals, assertMatch } from "../assert.ts";
import { Lab, labUnavailable } from "../lab/lab.ts";
import { DEMO_RESOLV, MAIN, startDemo } from "../adversarial/harness.ts";

const ignore = labUnavailable() !== undefined;
const UPSTREAM = new URL("../lab/upstream_dns.ts", import.meta.url).pathname;

Deno.test({
  name:
    "e2e: a name the upstream answers after 4 s resolves through k8stun (glibc's 5 s × 2, not one 3 s try)",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using lab = await Lab.create({ resolvConf: "nameserver 10.77.0.2\n" });
    const peer = await lab.addPeer();
    await peer.spawn(Deno.execPath(), ["run", "-A", UPSTREAM]).waitForOutput(/READY/, 30_000);
    const k8stun = lab.spawn(Deno.execPath(), ["run", "-A", MAIN, "demo"]);
    await k8stun.waitForOutput(/k8stun is ready on/, 60_000);
    const slower = await lab.run("dig", ["+tries=1", "+time=12", "slower.public-example.com"]);
    assertMatch(slower.stdout, /status: NOERROR/, slower.stdout);
    assertMatch(slower.stdout, /203\.0\.113\.10/);
  },
});

Deno.test({
  name: "e2e: when tun_route falls back to forward, the banner and /healthz say forward and why",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using lab = await Lab.create({ resolvConf: DEMO_RESOLV }); // 127.0.0.1: a local stub
    const k8stun = await startDemo(lab, ["--http", "8793"]);
    assertMatch(
      k8stun.output,
      /dns forward because tun_route is not possible here: the system resolver 127\.0\.0\.1 is a local stub/,
    );
    const health = JSON.parse(
      (await lab.run("curl", ["-s", "http://127.0.0.1:8793/healthz"])).stdout,
    );
    assertEquals(health.dns_mode, "forward");
    assertEquals(health.dns_mode_requested, "tun_route");
    assertMatch(health.dns_note, /local stub/);
  },
});

for (const journal of ["kept", "lost (a reboot empties the runtime directory)"]) {
  Deno.test({
    name:
      `e2e: forward mode killed with SIGKILL leaves names resolving (the original server follows k8stun's in resolv.conf); cleanup restores the file, its journal ${journal}`,
    ignore,
    sanitizeResources: false,
    sanitizeOps: false,
    async fn() {
      const original = "nameserver 10.77.0.2\noptions timeout:2\n";
      await using lab = await Lab.create({ resolvConf: original });
      const peer = await lab.addPeer();
      await peer.spawn(Deno.execPath(), ["run", "-A", UPSTREAM]).waitForOutput(/READY/, 30_000);
      const k8stun = await startDemo(lab, ["--dns-mode", "forward"]);
      const written = await Deno.readTextFile(lab.resolvConfPath);
      assertMatch(written, /^nameserver 127\.0\.0\.153\n(#.*\n)?nameserver 10\.77\.0\.2$/m);
      const cluster = await lab.run("getent", ["hosts", "hello.demo"]);
      assertMatch(cluster.stdout, /^198\.1[89]\.\d+\.\d+\s+hello\.demo/);

      k8stun.signal("SIGKILL");
      await k8stun.status;
      assertEquals(await Deno.readTextFile(lab.resolvConfPath), written, "nothing restored it");
      const publicName = await lab.run("getent", ["hosts", "www.public-example.com"]);
      assertEquals(publicName.code, 0, "names still resolve with k8stun dead");
      assertMatch(publicName.stdout, /^203\.0\.113\.7\s/);

      if (journal !== "kept") {
        const runtime = lab.env.K8STUN_RUNTIME_DIR;
        for await (const entry of Deno.readDir(runtime)) {
          if (entry.name.startsWith("journal-")) await Deno.remove(`${runtime}/${entry.name}`);
        }
      }
      const cleanup = await lab.run(Deno.execPath(), ["run", "-A", MAIN, "cleanup"]);
      assertEquals(cleanup.code, 0, cleanup.stderr);
      assertMatch(cleanup.stdout, journal === "kept" ? /restored/ : /k8stun's lines removed/);
      assertEquals(await Deno.readTextFile(lab.resolvConfPath), original);
    },
  });
}
