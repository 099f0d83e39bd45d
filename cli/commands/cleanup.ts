/**
 * `k8stun cleanup`: undoes what a crashed or killed k8stun left behind: the journaled DNS
 * changes (only files the DNS modes change and tun_route's own policy rules, whatever the
 * journal says) and a stale `api.json`, which holds the API token of a run that is gone.
 */
import type { Command } from "commander";
import { removeStaleInstanceFile } from "../../core/api/instance_file.ts";
import { journalPath, repairJournal } from "../../core/journal.ts";
import { isFileForwardChanges } from "../../plugins/dns/forward.ts";
import { diversionRuleUndo } from "../../ffi/linux/dns_diversion.ts";
import { openLibc } from "../../ffi/linux/libc.ts";

/** Registers `cleanup`. */
export function registerCleanup(program: Command): void {
  program.command("cleanup")
    .description("restore system settings (DNS) that a crashed k8stun left changed")
    .action(async () => {
      const libc = openLibc();
      const messages = await repairJournal(
        isFileForwardChanges,
        journalPath(),
        diversionRuleUndo(libc.symbols),
      ).finally(() => libc.close());
      const stale = await removeStaleInstanceFile();
      if (stale) messages.push(stale);
      if (messages.length === 0) console.log("nothing to clean up");
      for (const m of messages) console.log(m);
    });
}
