/** `k8stun run`: TUN mode against the kubeconfig's cluster. */
import type { Command } from "commander";
import { loadKubeConfig } from "../../core/kubeconfig.ts";
import { logger } from "../../core/log.ts";
import { addFlags, readFlags } from "../option_table.ts";
import { runFlags, runOptionWarnings } from "../run_options.ts";
import { trapStopSignals } from "../session.ts";
import { printBanner } from "../banner.ts";
import { startTunnel } from "../tunnel.ts";

/** Registers `run`. */
export function registerRun(program: Command): void {
  const table = runFlags({ namespaces: ["default"] });
  addFlags(
    program.command("run").description(
      "TUN mode: route a virtual-IP range and cluster DNS names into the cluster (needs root)",
    ),
    table,
  ).action(
    async (raw: Record<string, unknown>) => {
      const signals = trapStopSignals({ refuseSuspend: true });
      const options = readFlags(table, raw);
      for (const w of runOptionWarnings(options)) logger("run").warn(w);
      const kube = loadKubeConfig({ kubeconfig: options.kubeconfig, context: options.context });
      const tunnel = await startTunnel(
        options,
        kube,
        (line) => console.log(line),
        signals,
      );
      printBanner(tunnel, options.namespaces);
      await signals.runUntilStopped(() => tunnel.close());
    },
  );
}
