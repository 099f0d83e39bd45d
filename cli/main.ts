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
    .addOption(
      new Option(
        "--lib-log-level <level>",
        "level for messages from the libraries k8stun uses (same values as -l)",
      )
        .argParser(logLevel).default(parseLogLevel("warn"), "warn"),
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
 * An invocation without a command is treated as `run`, as a drop-in for scripts that call the Rust
 * k8stun (docs/compatibility.md §1): `k8stun -n demo` is `k8stun run -n demo`. Global flags (`-l debug`,
 * `--log-format json`, …) may come first with any command, so they are skipped, with their values,
 * when looking for the command name.
 */
export function normaliseArgs(args: string[], program: Command): string[] {
  const commands = new Set(program.commands.flatMap((c) => [c.name(), ...c.aliases()]));
  const globals = new Map(
    program.options.flatMap((o) =>
      [o.short, o.long].filter((f): f is string => f !== undefined).map((f) => [f, o] as const)
    ),
  );
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (commands.has(arg) || arg === "help") return args;
    if (["-h", "--help", "-V", "--version", "--"].includes(arg)) return args;
    const long = arg.startsWith("--");
    const option = globals.get(long ? arg.split("=", 1)[0] : arg.slice(0, 2));
    if (option === undefined) break;
    // `--flag value` and `-l value` take the next argument; `--flag=value` and `-ldebug` do not.
    const attached = long ? arg.includes("=") : arg.length > 2;
    if (option.required && !attached) i++;
  }
  if (args.length === 0 || !commands.has("run")) return args;
  return args[0].startsWith("-") ? ["run", ...args] : args;
}

if (import.meta.main) {
  const program = buildProgram();
  try {
    await program.parseAsync(normaliseArgs(Deno.args, program), { from: "user" });
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
