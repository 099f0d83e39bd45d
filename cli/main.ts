/**
 * The `k8stun` command line. Each subcommand lives in `cli/commands/` and registers itself on the
 * program; this file wires global options, logging, and error reporting.
 */
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { StoppedDuringStartup } from "./session.ts";
import { LOG_FORMATS, parseLogLevel, setupLogging } from "../core/log.ts";
import { versionLine } from "./version.ts";
import { registerCommands } from "./commands/mod.ts";

function logLevel(value: string) {
  try {
    return parseLogLevel(value);
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
}

/** Builds the program (exported so tests can inspect `--help` without spawning). */
export function buildProgram(): Command {
  const program = new Command("k8stun")
    .description(
      "Transparent network access from this machine into a Kubernetes cluster:\n" +
        "curl http://svc.namespace/ as if the laptop were a pod.",
    )
    .version(versionLine(), "-V, --version", "print the version")
    .option("-l, --log-level <level>", "trace, debug, info, warn, error or off", logLevel, "info")
    .option(
      "--lib-log-level <level>",
      "level for messages from libraries k8stun wraps",
      logLevel,
      "warning",
    )
    .option("--log-source", "prefix text log lines with the component that wrote them")
    .addOption(
      new Option("--log-format <format>", "text or json").choices([...LOG_FORMATS]).default("text"),
    )
    .hook("preAction", async (thisCommand) => {
      const o = thisCommand.opts();
      await setupLogging(o.logLevel, o.logFormat, {
        source: o.logSource === true,
        libLevel: o.libLogLevel,
      });
    })
    .showHelpAfterError("(run k8stun --help for usage)")
    .configureOutput({ writeErr: (s) => Deno.stderr.writeSync(new TextEncoder().encode(s)) })
    .exitOverride();
  registerCommands(program);
  return program;
}

/**
 * An invocation whose first argument starts with `-` (other than help/version) is treated as
 * `run`, as a drop-in for scripts that call the Rust k8stun (parity §2.2).
 */
export function normaliseArgs(args: string[], commands: string[]): string[] {
  const first = args[0];
  if (first === undefined) return args;
  if (["-h", "--help", "-V", "--version"].includes(first)) return args;
  if (first.startsWith("-") && commands.includes("run")) return ["run", ...args];
  return args;
}

if (import.meta.main) {
  const program = buildProgram();
  const names = program.commands.map((c) => c.name());
  try {
    await program.parseAsync(normaliseArgs(Deno.args, names), { from: "user" });
  } catch (error) {
    if (error instanceof CommanderError) Deno.exit(error.exitCode);
    if (error instanceof StoppedDuringStartup) {
      console.error("k8stun: stopped during start-up; nothing left changed");
      Deno.exit(130);
    }
    const message = error instanceof Error ? error.message : String(error);
    console.error(`k8stun: ${message}`);
    Deno.exit(1);
  }
}
