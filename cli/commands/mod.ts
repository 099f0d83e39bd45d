/** Registers every subcommand on the program. */
import type { Command } from "commander";

/** Adds the subcommands to `program`. */
export function registerCommands(_program: Command): void {
}
