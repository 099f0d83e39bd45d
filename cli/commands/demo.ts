/**
 * `k8stun demo`: TUN mode against a built-in simulated cluster (namespace `demo` with `hello`,
 * `echo` and the StatefulSet-style `db`), printing the commands to try. Takes the same flags
 * as `run`.
 */
import { resolve } from "node:path";
import type { Command } from "commander";
import { loadKubeConfig } from "../../core/kubeconfig.ts";
import { readOwnFile } from "../../core/user_files.ts";
import { DEMO_FIXTURE, type Fixture, parseFixture, startSimCluster } from "../../sim/mod.ts";
import { demoDirName, ensureRuntimeDir, runtimeDir } from "../../core/runtime_dir.ts";
import { printBanner } from "../banner.ts";
import { logger } from "../../core/log.ts";
import { addFlags, flag, readFlags } from "../option_table.ts";
import { runFlags, runOptionWarnings } from "../run_options.ts";
import { trapStopSignals } from "../session.ts";
import { startTunnel } from "../tunnel.ts";

/** Registers `demo`. */
export function registerDemo(program: Command): void {
  const table = {
    ...runFlags({ namespaces: ["demo"] }),
    fixturePath: flag(
      "--fixture <file>",
      "serve this cluster fixture (YAML/JSON, see k8stun sim) instead of the built-in one",
    ),
  };
  addFlags(
    program.command("demo")
      .description("try k8stun against a built-in simulated cluster (TUN mode; needs root)"),
    table,
  ).action(async (raw: Record<string, unknown>) => {
    const signals = trapStopSignals({ refuseSuspend: true });
    const { fixturePath, ...options } = readFlags(table, raw);
    for (const w of runOptionWarnings(options)) logger("demo").warn(w);
    const fixture = fixturePath
      ? parseFixture(await Deno.readTextFile(fixturePath), fixturePath)
      : DEMO_FIXTURE;
    const sim = await startSimCluster({ fixture });
    // In the runtime directory, so that `k8stun cleanup` removes it when the demo was killed.
    const runtime = runtimeDir();
    ensureRuntimeDir(runtime);
    const dir = `${runtime}/${demoDirName()}`;
    await Deno.mkdir(dir, { mode: 0o700 });
    const kubeconfig = `${dir}/kubeconfig`;
    await sim.writeKubeconfig(kubeconfig, "demo");
    console.log(`simulated cluster at ${sim.url} (kubeconfig ${kubeconfig})`);
    let tunnel;
    try {
      tunnel = await startTunnel(
        // The simulated cluster's address changes every run; its VIPs persist under one name.
        {
          ...options,
          kubeconfig,
          context: undefined,
          vipStateKey: fixturePath ? `demo fixture ${resolve(fixturePath)}` : "demo",
        },
        // k8stun's own file in its runtime directory, not one the user named: read as k8stun.
        loadKubeConfig({ kubeconfig }, { readFile: readOwnFile }),
        (l) => console.log(l),
        signals,
      );
    } catch (error) {
      await sim.close();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      throw error;
    }
    printBanner(tunnel, options.namespaces);
    console.log("");
    console.log("Try, in another terminal:");
    const vipOf = (namespace: string, name: string) =>
      tunnel.vips.vipOf({ type: "service", namespace, name });
    const names = options.dnsMode !== "disabled";
    const lines = fixture === DEMO_FIXTURE
      ? builtinDemoCommands(names, vipOf)
      : fixtureCommands(fixture, names, vipOf);
    for (const line of lines) console.log(`  ${line}`);
    if (tunnel.apiUrl) console.log(`  open ${tunnel.apiUrl}/                  # live dashboard`);
    await signals.runUntilStopped(async () => {
      await tunnel.close();
      await sim.close();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    });
  });
}

type VipOf = (namespace: string, name: string) => string | undefined;

/** The commands to try against the built-in demo cluster. */
function builtinDemoCommands(names: boolean, vipOf: VipOf): string[] {
  const hello = names ? "hello.demo" : vipOf("demo", "hello");
  const lines = [`curl http://${hello}/                    # a page naming the pod that answered`];
  if (!names) return lines;
  return [
    ...lines,
    "curl http://hello.demo.svc.cluster.local/",
    "printf 'hi\\n' | nc -N echo.demo 7         # TCP echo",
    "nc db-0.db.demo 5432                        # StatefulSet pod: prints db-0, then echoes",
    `dig hello.demo; dig AAAA hello.demo; dig -x ${vipOf("demo", "hello")}`,
  ];
}

/** At most this many services of a fixture get a suggested command. */
const FIXTURE_COMMANDS = 6;

/** Commands to try against a fixture: one per service port (HTTP ones with curl). */
export function fixtureCommands(fixture: Fixture, names: boolean, vipOf: VipOf): string[] {
  const lines: string[] = [];
  for (const ns of fixture.namespaces) {
    for (const service of ns.services) {
      const port = service.ports.find((p) => p.protocol === "TCP");
      if (!port || lines.length >= FIXTURE_COMMANDS) continue;
      const host = names ? `${service.name}.${ns.name}` : vipOf(ns.name, service.name);
      if (host === undefined) continue;
      const http = port.port === 80 || port.port === 8080 || /http/.test(port.name ?? "");
      lines.push(
        http
          ? `curl http://${host}${port.port === 80 ? "" : `:${port.port}`}/`
          : `nc ${host} ${port.port}`,
      );
    }
  }
  if (lines.length === 0) lines.push("(the fixture has no service with a TCP port)");
  return lines;
}
