/** Parses arguments through a command's flag table as the command would, throwing instead of exiting. */
import { Command } from "commander";
import { addFlags, type FlagTable, type FlagValues, readFlags } from "../../cli/option_table.ts";

/** The configuration `args` give with `table` (commander's errors are thrown, not printed). */
export function parseFlags<T extends FlagTable>(table: T, args: string[]): FlagValues<T> {
  const command = addFlags(new Command("test").exitOverride(), table);
  command.configureOutput({ writeErr: () => {} });
  command.parse(args, { from: "user" });
  return readFlags(table, command.opts());
}
