/**
 * What the network's resolver learns from k8stun: only the names apps ask that are not the
 * cluster's. k8stun started as users start it from a checkout (`bin/k8stun`, with the environment
 * Deno's own update check would run in) must not ask it for cluster names, nor for anything of
 * its own — Deno's update check looked up dl.deno.land on every start until tools/deno turned it
 * off.
 */
import { assertEquals, assertMatch } from "../assert.ts";
import { Lab, labUnavailable } from "../lab/lab.ts";
import { LAUNCHER, warmLauncher } from "../cli/launcher.ts";

const ignore = labUnavailable() !== undefined;
const UPSTREAM = new URL("../lab/upstream_dns.ts", import.meta.url).pathname;

Deno.test({
  name:
    "e2e: the system resolver hears only the non-cluster names apps ask — no cluster names, no lookups of k8stun's own (bin/k8stun demo, tun_route)",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await warmLauncher();
    const names = await Deno.makeTempFile({ prefix: "k8stun-resolver-names-" });
    try {
      await using lab = await Lab.create({
        resolvConf: "nameserver 10.77.0.2\noptions ndots:1 timeout:1\n",
      });
      const peer = await lab.addPeer();
      await peer.spawn(Deno.execPath(), ["run", "-A", UPSTREAM, "--log-names", names])
        .waitForOutput(/READY/, 30_000);
      // As a user's shell would start it: without the variable the launcher sets.
      const k8stun = lab.spawn("env", ["-u", "DENO_NO_UPDATE_CHECK", LAUNCHER, "demo"]);
      await k8stun.waitForOutput(/k8stun is ready on/, 60_000);
      assertMatch(k8stun.output, /now reach k8stun through/);

      const dig = (name: string) =>
        lab.run("dig", ["+short", "+tries=1", "+time=3", name]).then((r) => r.stdout.trim());
      assertMatch(await dig("hello.demo"), /^198\.1[89]\./);
      assertMatch(await dig("hello.demo.svc.cluster.local"), /^198\.1[89]\./);
      assertMatch(await dig("db-0.db.demo"), /^198\.1[89]\./);
      assertEquals(await dig("www.public-example.com"), "203.0.113.7");
      const curl = await lab.run("curl", ["-sS", "--max-time", "5", "http://hello.demo/"]);
      assertEquals(curl.code, 0, curl.stderr);
      // Deno's update check runs in the background soon after start.
      await new Promise((resolve) => setTimeout(resolve, 2000));
      const asked = (await Deno.readTextFile(names)).split("\n").filter(Boolean);
      assertEquals(asked, ["www.public-example.com A"]);
    } finally {
      await Deno.remove(names);
    }
  },
});
