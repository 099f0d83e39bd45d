/**
 * k8stun(1) in roff (man-pages(7) conventions: NAME, SYNOPSIS, DESCRIPTION, OPTIONS, COMMANDS),
 * made from the help texts (help_text.ts).
 */
import type { CommandHelp, HelpEntry } from "./help_text.ts";

/** Escapes text for roff: backslashes, and a leading dot or quote that would start a request. */
function roff(text: string): string {
  return text.replaceAll("\\", "\\e").replaceAll("-", "\\-").replace(/^([.'])/, "\\&$1");
}

function entries(list: HelpEntry[]): string[] {
  return list.flatMap((entry) => [".TP", `.B ${roff(entry.term)}`, roff(entry.description)]);
}

/** The man page for `help` (the program's first, then its commands'). */
export function manPage(help: CommandHelp[], version: string, date: string): string {
  const [top, ...commands] = help;
  const lines = [
    `.TH K8STUN 1 "${date}" "k8stun ${roff(version)}" "User Commands"`,
    ".SH NAME",
    `k8stun \\- ${roff(top.description)}`,
    ".SH SYNOPSIS",
    `.B ${roff(top.usage)}`,
    ".SH DESCRIPTION",
    roff(top.description),
    ".SH OPTIONS",
    ...entries(top.options),
    ".SH COMMANDS",
  ];
  for (const command of commands) {
    lines.push(
      `.SS ${roff(command.usage)}`,
      roff(command.description),
      ...entries(command.options),
    );
  }
  return lines.join("\n") + "\n";
}
