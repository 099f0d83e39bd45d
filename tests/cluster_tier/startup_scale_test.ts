/**
 * Start-up at scale against the real control plane: k8stun starts against 1,000 Services in 50
 * namespaces (their EndpointSlices, 100 pods), pre-allocates a VIP for each, and answers `dig` for
 * one of them with the VIP its banner lists. Not timed: `deno task bench startup` measures.
 */
import { assert, assertEquals, assertMatch } from "../assert.ts";
import { cachedBinaries } from "../lab/kube/control_plane.ts";
import { scaleObjectCount, STARTUP_SCALE } from "../lab/kube/scale.ts";
import type { StartupReport } from "../lab/kube/start_at_scale.ts";
import { Lab, labUnavailable } from "../lab/lab.ts";

const bin = await cachedBinaries();

Deno.test({
  name: "cluster tier: k8stun starts against 1,000 services and answers dig for one of them",
  ignore: bin === undefined || labUnavailable() !== undefined,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using lab = await Lab.create({ resolvConf: "nameserver 127.0.0.1\noptions timeout:1\n" });
    const script = new URL("../lab/kube/start_at_scale.ts", import.meta.url).pathname;
    const out = await lab.run(Deno.execPath(), ["run", "-A", script, "kube", bin!, "1"], {
      timeoutMs: 180_000,
    });
    const line = out.stdout.trim().split("\n").at(-1) ?? "";
    assert(line.startsWith("{"), `no report (exit ${out.code}): ${out.stderr.slice(-2000)}`);
    const report: StartupReport = JSON.parse(line);
    const [round] = report.rounds;
    assert(
      round.objects >= scaleObjectCount(STARTUP_SCALE),
      `k8stun listed ${round.objects} objects`,
    );
    assertMatch(report.dig.answer, /^198\.1[89]\.\d+\.\d+$/, `dig ${report.dig.name}`);
    assertEquals(report.dig.answer, report.dig.bannerVip, "the pre-allocated VIP is the answer");
  },
});
