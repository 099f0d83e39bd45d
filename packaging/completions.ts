/**
 * Shell completions for bash, zsh and fish, made from the help texts (help_text.ts): the
 * commands after `k8stun`, and each command's flags after it.
 */
import { type CommandHelp, flagsOf } from "./help_text.ts";

/** Words a shell may complete: the commands, and the flags of each ("" = the program's). */
function vocabulary(help: CommandHelp[]): { commands: string[]; flags: Map<string, string[]> } {
  const flags = new Map(help.map((h) => [h.name, h.options.flatMap(flagsOf)]));
  return { commands: help.slice(1).map((h) => h.name), flags };
}

/** Words are flags and command names: letters, digits and dashes only; anything else is refused. */
function checked(words: string[]): string {
  for (const word of words) {
    if (!/^-{0,2}[A-Za-z0-9][A-Za-z0-9-]*$/.test(word)) {
      throw new Error(`unexpected word in the help text: ${JSON.stringify(word)}`);
    }
  }
  return words.join(" ");
}

/** For /usr/share/bash-completion/completions/k8stun. */
export function bashCompletion(help: CommandHelp[]): string {
  const { commands, flags } = vocabulary(help);
  const cases = commands.map((c) => `    ${c}) words="${checked(flags.get(c)!)}" ;;`);
  return `# bash completion for k8stun (generated from k8stun --help)
_k8stun() {
  local cur=\${COMP_WORDS[COMP_CWORD]} command=\${COMP_WORDS[1]} words
  if [ "$COMP_CWORD" -eq 1 ]; then
    words="${checked([...commands, ...flags.get("")!])}"
  else
    case "$command" in
${cases.join("\n")}
    *) words="" ;;
    esac
  fi
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -o default -F _k8stun k8stun
`;
}

/** For /usr/share/zsh/vendor-completions/_k8stun. */
export function zshCompletion(help: CommandHelp[]): string {
  const { commands, flags } = vocabulary(help);
  const cases = commands.map((c) => `    ${c}) compadd -- ${checked(flags.get(c)!)} ;;`);
  return `#compdef k8stun
# zsh completion for k8stun (generated from k8stun --help)
if (( CURRENT == 2 )); then
  compadd -- ${checked([...commands, ...flags.get("")!])}
else
  case $words[2] in
${cases.join("\n")}
  esac
fi
`;
}

/** For /usr/share/fish/vendor_completions.d/k8stun.fish. */
export function fishCompletion(help: CommandHelp[]): string {
  const { commands, flags } = vocabulary(help);
  const lines = [
    "# fish completion for k8stun (generated from k8stun --help)",
    `complete -c k8stun -f -n __fish_use_subcommand -a "${checked(commands)}"`,
  ];
  for (const command of commands) {
    for (const flag of flags.get(command)!) {
      const option = flag.startsWith("--") ? `-l ${flag.slice(2)}` : `-s ${flag.slice(1)}`;
      checked([flag]);
      lines.push(`complete -c k8stun -n "__fish_seen_subcommand_from ${command}" ${option}`);
    }
  }
  return lines.join("\n") + "\n";
}
