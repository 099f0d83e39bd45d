/** Registers every subcommand on the program. */
import type { Command } from "commander";
import { registerStatus } from "./status.ts";

/** Adds the subcommands to `program`. */
export function registerCommands(program: Command): void {
  registerStatus(program);
}
