/**
 * `k8stun demo`: TUN mode against a built-in simulated cluster (namespace `demo` with `hello`,
 * `echo` and the StatefulSet-style `db`), printing the commands to try. Takes the same flags
 * as `run`.
 */
import type { Command } from "commander";
import { loadKubeConfig } from "../../core/kubeconfig.ts";
import { DEMO_FIXTURE, parseFixture, startSimCluster } from "../../core/sim/mod.ts";
import { printBanner } from "../banner.ts";
import { logger } from "../../core/log.ts";
import { addRunOptions, runOptionsFrom, runOptionWarnings } from "../run_options.ts";
import { trapStopSignals } from "../session.ts";
import { startTunnel } from "../tunnel.ts";

/** Registers `demo`. */
export function registerDemo(program: Command): void {
  const command = program.command("demo")
    .description("try k8stun against a built-in simulated cluster (TUN mode; needs root)");
  addRunOptions(command, { namespaces: ["demo"] }).option(
    "--fixture <file>",
    "serve this cluster fixture (YAML/JSON, see k8stun sim) instead of the built-in one",
  ).action(async (raw: Record<string, unknown>) => {
    const signals = trapStopSignals();
    const options = runOptionsFrom(raw, { namespaces: ["demo"] });
    for (const w of runOptionWarnings(options)) logger("demo").warn(w);
    const fixturePath = raw.fixture as string | undefined;
    const fixture = fixturePath
      ? parseFixture(await Deno.readTextFile(fixturePath), fixturePath)
      : DEMO_FIXTURE;
    const sim = await startSimCluster({ fixture });
    const dir = await Deno.makeTempDir({ prefix: "k8stun-demo-" });
    const kubeconfig = `${dir}/kubeconfig`;
    await sim.writeKubeconfig(kubeconfig, "demo");
    console.log(`simulated cluster at ${sim.url} (kubeconfig ${kubeconfig})`);
    let tunnel;
    try {
      tunnel = await startTunnel(
        { ...options, kubeconfig, context: undefined },
        loadKubeConfig({ kubeconfig }),
        (l) => console.log(l),
        signals,
      );
    } catch (error) {
      await sim.close();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      throw error;
    }
    printBanner(tunnel, options.namespaces);
    const names = options.dnsMode === "disabled";
    const hello = names
      ? tunnel.vips.vipOf({ type: "service", namespace: "demo", name: "hello" })
      : "hello.demo";
    console.log("");
    console.log("Try, in another terminal:");
    console.log(`  curl http://${hello}/                    # a page naming the pod that answered`);
    if (!names) {
      console.log("  curl http://hello.demo.svc.cluster.local/");
      console.log("  printf 'hi\\n' | nc -N echo.demo 7         # TCP echo");
      console.log(
        "  nc db-0.db.demo 5432                        # StatefulSet pod: prints db-0, then echoes",
      );
      console.log(
        "  dig hello.demo; dig AAAA hello.demo; dig -x " +
          tunnel.vips.vipOf({ type: "service", namespace: "demo", name: "hello" }),
      );
    }
    if (tunnel.apiUrl) console.log(`  open ${tunnel.apiUrl}/                  # live dashboard`);
    await signals.runUntilStopped(async () => {
      await tunnel.close();
      await sim.close();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    });
  });
}
