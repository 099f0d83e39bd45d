/**
 * The command-line interface as `k8stun --help` and `k8stun <command> --help` print it
 * (commander's layout: a usage line, a description, then "Options:" and "Commands:" sections of
 * two-space-indented entries): what the man page and the shell completions are made from, so
 * they never drift from the program.
 */

/** One entry of an "Options:" or "Commands:" section. */
export interface HelpEntry {
  /** The left column: `-n, --namespaces <list>`, or `run [options]`. */
  term: string;
  description: string;
}

/** One command's help. */
export interface CommandHelp {
  /** "" for the program itself. */
  name: string;
  usage: string;
  description: string;
  options: HelpEntry[];
  commands: HelpEntry[];
}

/** Parses one `--help` output. */
export function parseHelp(name: string, text: string): CommandHelp {
  const help: CommandHelp = { name, usage: "", description: "", options: [], commands: [] };
  const description: string[] = [];
  let section: HelpEntry[] | undefined;
  for (const line of text.split("\n")) {
    if (line.startsWith("Usage: ")) {
      help.usage = line.slice("Usage: ".length).trim();
    } else if (line === "Options:") {
      section = help.options;
    } else if (line === "Commands:") {
      section = help.commands;
    } else if (section === undefined) {
      if (line.trim() !== "") description.push(line.trim());
    } else if (/^ {2}\S/.test(line)) {
      // The term ends at the first run of two spaces; the description may follow on the line.
      const match = /^ {2}(\S.*?)(?: {2,}(.*))?$/.exec(line)!;
      section.push({ term: match[1], description: match[2] ?? "" });
    } else if (line.trim() !== "" && section.length > 0) {
      const last = section[section.length - 1];
      last.description = `${last.description} ${line.trim()}`.trim();
    }
  }
  help.description = description.join(" ");
  return help;
}

/** The flags an option entry names: `-n, --namespaces <list>` → `-n`, `--namespaces`. */
export function flagsOf(entry: HelpEntry): string[] {
  return entry.term.split(/[ ,]+/).filter((word) => word.startsWith("-"));
}

/** The command an entry of "Commands:" names (`run [options]` → `run`). */
export function commandOf(entry: HelpEntry): string {
  return entry.term.split(" ")[0];
}

/**
 * The program's help and each command's (but `help` itself), by running `program`. The
 * program's own help text is English and fixed: it needs no cluster, no root.
 */
export async function readHelp(program: string): Promise<CommandHelp[]> {
  const run = async (args: string[]) => {
    const out = await new Deno.Command(program, { args, stdout: "piped", stderr: "piped" })
      .output();
    if (!out.success) {
      throw new Error(
        `${program} ${args.join(" ")} failed (exit ${out.code}): ${
          new TextDecoder().decode(out.stderr)
        }`,
      );
    }
    return new TextDecoder().decode(out.stdout);
  };
  const top = parseHelp("", await run(["--help"]));
  const commands = top.commands.map(commandOf).filter((name) => name !== "help");
  const all = [top];
  for (const name of commands) all.push(parseHelp(name, await run([name, "--help"])));
  return all;
}
