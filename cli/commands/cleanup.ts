/**
 * `k8stun cleanup`: undoes what crashed or killed k8stuns left behind — their journaled DNS
 * changes (only files the DNS modes change and tun_route's own policy rules, whatever a journal
 * says), their API records (which hold the token of a run that is gone) and files they were
 * killed in the middle of writing. What a running k8stun owns is left to it. Every start of TUN
 * mode does the same first.
 */
import type { Command } from "commander";
import { removeStaleInstanceFiles } from "../../core/api/instance_file.ts";
import { type JournalRepair, repairJournals, type RuleUndo } from "../../core/journal.ts";
import { removeDeadTemporaries, runtimeDir } from "../../core/runtime_dir.ts";
import {
  type ForwardSystem,
  isFileForwardChanges,
  repairOrphanedFiles,
} from "../../plugins/dns/forward.ts";
import { openHostNetwork } from "../../ffi/host_network.ts";

/**
 * Undoes what the k8stuns that no longer run left in `dir` (the runtime directory), and, when
 * none runs, the DNS files of k8stun's whose journal went with that directory (a reboot empties
 * it; /etc keeps them). `forwardFiles` moves forward mode's files elsewhere (tests).
 */
export async function cleanUpAfterDeadRuns(
  rules: RuleUndo | undefined,
  dir: string = runtimeDir(),
  forwardFiles: Partial<Pick<ForwardSystem, "os" | "path" | "resolverDir">> = {},
): Promise<JournalRepair> {
  const repair = await repairJournals(isFileForwardChanges, rules, dir);
  repair.messages.push(...await removeStaleInstanceFiles(dir), ...removeDeadTemporaries(dir));
  // Only root writes these files, and only root's runtime directory lists every k8stun that may
  // have written them (a user's lists that user's proxies).
  if (Deno.uid() === 0 && repair.running.length === 0) {
    repair.messages.push(...await repairOrphanedFiles(forwardFiles));
  }
  return repair;
}

/** Registers `cleanup`. */
export function registerCleanup(program: Command): void {
  program.command("cleanup")
    .description("restore system settings (DNS) that a crashed k8stun left changed")
    .action(async () => {
      const hostNetwork = openHostNetwork();
      const { messages, running } = await cleanUpAfterDeadRuns(hostNetwork.ruleUndo)
        .finally(() => hostNetwork.close());
      for (const pid of running) {
        messages.push(`k8stun (pid ${pid}) is running: its changes are left to it (stop it first)`);
      }
      if (messages.length === 0) console.log("nothing to clean up");
      for (const m of messages) console.log(m);
    });
}
