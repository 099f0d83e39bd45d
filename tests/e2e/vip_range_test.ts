/**
 * Range coexistence in a lab: a "fake-IP proxy" interface owns 198.18.0.0/16; k8stun takes the
 * next free range, leaves the other route alone and says so; a --vip-base that overlaps it is
 * refused with the interface's name.
 */
import { assertEquals, assertMatch } from "../assert.ts";
import { type Lab, labTest } from "../lab/lab.ts";
import { DEMO_RESOLV, MAIN, startDemo, vipOf } from "../adversarial/harness.ts";

async function fakeProxyRoute(lab: Lab): Promise<void> {
  const out = await lab.sh(
    "ip link add fakeip0 type veth peer name fakeip1 && ip link set fakeip0 up && " +
      "ip link set fakeip1 up && ip route add 198.18.0.0/16 dev fakeip0",
  );
  assertEquals(out.code, 0, out.stderr);
}

labTest(
  "e2e: with 198.18.0.0/16 routed elsewhere, k8stun takes 198.19.0.0/16 and leaves the other route alone",
  async (lab) => {
    await fakeProxyRoute(lab);
    const k8stun = await startDemo(lab);
    assertMatch(k8stun.output, /VIP range 198\.18\.0\.0\/15 is already routed to fakeip0/);
    assertMatch(k8stun.output, /route 198\.19\.0\.0\/16/);
    const vip = await vipOf(lab, "hello.demo");
    assertMatch(vip, /^198\.19\./);
    const curl = await lab.run("curl", ["-s", "-m", "5", "http://hello.demo/"]);
    assertMatch(curl.stdout, /^hello from/);
    const other = await lab.run("ip", ["route", "get", "198.18.0.5"]);
    assertMatch(other.stdout, /dev fakeip0/, "the other route is untouched");
  },
  { resolvConf: DEMO_RESOLV },
);

labTest(
  "e2e: an explicit --vip-base that another interface routes is one error naming it",
  async (lab) => {
    await fakeProxyRoute(lab);
    const out = await lab.run(Deno.execPath(), [
      "run",
      "-A",
      MAIN,
      "demo",
      "--vip-base",
      "198.18.0.0/15",
    ]);
    assertEquals(out.code, 1, out.stderr);
    assertMatch(
      out.stderr,
      /--vip-base 198\.18\.0\.0\/15 overlaps 198\.18\.0\.0\/16, which is routed to fakeip0/,
    );
    const routes = await lab.run("ip", ["route"]);
    assertMatch(routes.stdout, /198\.18\.0\.0\/16 dev fakeip0/);
    assertEquals(/198\.18\.0\.0\/15/.test(routes.stdout), false, "no route of k8stun's left");
  },
  { resolvConf: DEMO_RESOLV },
);
