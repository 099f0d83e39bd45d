/**
 * A VIP range too small for what is looked up (`--vip-base` with a /29: four VIPs). k8stun starts
 * and serves the names that got a VIP; a name that would need one more answers SERVFAIL, and the
 * log says once why and what to do — not once per lookup, and no crash.
 */
import { assertEquals, assertMatch } from "../assert.ts";
import { labTest } from "../lab/lab.ts";
import { DEMO_RESOLV, startDemo } from "../adversarial/harness.ts";

labTest(
  "e2e: a full VIP range answers SERVFAIL for names past it, says why once, and serves the rest",
  async (lab) => {
    const k8stun = await startDemo(lab, ["--vip-base", "198.18.0.0/29"]);
    const curl = await lab.run("curl", ["-sS", "--max-time", "3", "http://hello.demo/"]);
    assertMatch(curl.stdout, /^hello from/, curl.stderr);
    await lab.run("dig", ["+short", "db-0.db.demo"]); // the fourth and last VIP
    for (let i = 0; i < 3; i++) {
      const dig = await lab.run("dig", ["+time=2", "+tries=1", `x${i}.db.demo`]);
      assertMatch(dig.stdout, /status: (SERVFAIL|NXDOMAIN)/);
    }
    const full = await lab.run("dig", ["+time=2", "+tries=1", "db.demo"]);
    assertMatch(full.stdout, /status: SERVFAIL/, "a headless service needs VIPs for its pods");
    await lab.run("dig", ["+time=2", "+tries=1", "db.demo"]);
    const said = k8stun.output.match(
      /VIP range 198\.18\.0\.0\/29 is exhausted \(4 VIPs\): widen --vip-base/g,
    );
    assertEquals(said?.length, 1, k8stun.output.slice(-2000));
    k8stun.signal("SIGINT");
    assertEquals((await k8stun.status).code, 0);
  },
  { resolvConf: DEMO_RESOLV },
);
