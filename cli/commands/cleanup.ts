/** `k8stun cleanup`: undoes what a crashed or killed k8stun left behind (journaled changes). */
import type { Command } from "commander";
import { journalPath, repairJournal } from "../../core/journal.ts";

/** Registers `cleanup`. */
export function registerCleanup(program: Command): void {
  program.command("cleanup")
    .description("restore system settings (DNS) that a crashed k8stun left changed")
    .action(async () => {
      const path = journalPath();
      const messages = await repairJournal(path);
      if (messages.length === 0) console.log("nothing to clean up");
      for (const m of messages) console.log(m);
    });
}
