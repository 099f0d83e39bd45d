/**
 * How connections through the TUN end, as `/metrics` counts them: iperf3's data connections,
 * which its server closes with bytes unread (so the kernel resets them), end as `reset` — never
 * as `error`, which is kept for failures of k8stun's own path.
 */
import { assert, assertEquals } from "../assert.ts";
import { Lab, labUnavailable } from "../lab/lab.ts";

const PLANE = new URL("../lab/tun_plane.ts", import.meta.url).pathname;

Deno.test({
  name: "connection end: iperf3's reset data connections are counted as reset, not as errors",
  ignore: labUnavailable() !== undefined,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using lab = await Lab.create();
    const plane = lab.spawn(Deno.execPath(), ["run", "-A", PLANE, "1500"], {
      env: { K8STUN_LAB_CLOSES: "1" },
    });
    await plane.waitForOutput(/READY/, 30_000);
    lab.spawn("iperf3", ["-s", "-p", "5201"]);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const run = await lab.run("iperf3", ["-c", "198.18.0.2", "-p", "5201", "-t", "1", "-P", "2"]);
    assertEquals(run.code, 0, run.stdout + run.stderr);
    await plane.waitForOutput(/(CLOSED 5201 .*\n[^]*){3}/, 10_000);
    const ends = plane.output.split("\n").filter((l) => l.startsWith("CLOSED 5201"));
    assert(ends.every((l) => !/^CLOSED 5201 error/.test(l)), ends.join("\n"));
    assert(
      ends.some((l) => /^CLOSED 5201 reset/.test(l)),
      `iperf3 resets its data connections:\n${ends}`,
    );
  },
});
