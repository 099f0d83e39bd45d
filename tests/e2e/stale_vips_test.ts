/**
 * VIPs a user relies on are never reclaimed: a pre-allocated (`--services`, `-n`) VIP keeps
 * working past the stale timeout, while a VIP handed out on demand is reclaimed close to it.
 */
import { assert, assertEquals } from "../assert.ts";
import { labTest } from "../lab/lab.ts";
import { DEMO_RESOLV, startDemo, vipOf } from "../adversarial/harness.ts";

labTest(
  "e2e: with --stale-vip-timeout 2 a pre-allocated VIP keeps answering, an on-demand VIP is reclaimed within seconds",
  async (lab) => {
    await startDemo(lab, [
      "--no-auto-discover",
      "--services",
      "hello.demo",
      "--stale-vip-timeout",
      "2",
      "--http",
      "8792",
    ]);
    const vips = async () =>
      JSON.parse((await lab.run("curl", ["-s", "http://127.0.0.1:8792/vips"])).stdout).vips
        .map((v: { vip: string; target: { name: string } }) => `${v.target.name} ${v.vip}`);
    const [helloRow] = await vips();
    const helloVip = helloRow.split(" ")[1];
    const echoVip = await vipOf(lab, "echo.demo");
    assertEquals((await vips()).length, 2);
    await new Promise((r) => setTimeout(r, 6000));
    assertEquals(await vips(), [`hello ${helloVip}`], "the on-demand echo VIP was reclaimed");
    assert(echoVip !== helloVip);
    const curl = await lab.run("curl", ["-s", "-m", "5", `http://${helloVip}/`]);
    assertEquals(curl.code, 0, `pre-allocated VIP after the timeout: ${curl.stderr}`);
  },
  { resolvConf: DEMO_RESOLV },
);
