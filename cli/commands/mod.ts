/** Registers every subcommand on the program. */
import type { Command } from "commander";
import { registerCleanup } from "./cleanup.ts";
import { registerDemo } from "./demo.ts";
import { registerPlugins } from "./plugins.ts";
import { registerProxy } from "./proxy.ts";
import { registerRun } from "./run.ts";
import { registerSim } from "./sim.ts";
import { registerStatus } from "./status.ts";

/** Adds the subcommands to `program`. */
export function registerCommands(program: Command): void {
  registerRun(program);
  registerDemo(program);
  registerProxy(program);
  registerSim(program);
  registerStatus(program);
  registerPlugins(program);
  registerCleanup(program);
}
