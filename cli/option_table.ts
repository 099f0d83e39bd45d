/**
 * Declarative command-line flags: a command lists its flags once, in a table keyed by the name
 * its parsed configuration uses, and the table both declares them to commander (in table order,
 * which is the `--help` order) and reads commander's option bag back into a typed value. So a
 * configuration field, its flag, its default and its parser are written in one place.
 */
import { type Command, Option } from "commander";

/** One entry of a flag table: the commander options it declares and the value it yields. */
export interface Flag<T> {
  /** Usually one; a boolean with a `--no-` form has two. */
  options: Option[];
  /** The parsed value from commander's option bag. */
  value(raw: Record<string, unknown>): T;
}

/** A command's flags, keyed by configuration field. */
export type FlagTable = Record<string, Flag<unknown>>;

/** The configuration a table yields. */
export type FlagValues<T extends FlagTable> = {
  [K in keyof T]: T[K] extends Flag<infer V> ? V : never;
};

/** Parses a flag's text; `previous` is the value so far (for repeatable flags). */
export type FlagParser<T> = (value: string, previous: T | undefined) => T;

/** What a flag may add to its declaration. */
export interface FlagExtras<T> {
  parse?: FlagParser<T>;
  /** Environment variable that supplies the value when the flag is absent. */
  env?: string;
  /** The only values accepted (commander reports the others). */
  choices?: string[];
}

/** A flag without a default: its value, or undefined when absent. */
export function flag<T = string>(
  flags: string,
  description: string,
  extras: FlagExtras<T> = {},
): Flag<T | undefined> {
  const option = declare(flags, description, extras);
  return { options: [option], value: (raw) => raw[option.attributeName()] as T | undefined };
}

/** A flag with a default (shown in `--help`). */
export function flagWithDefault<T>(
  flags: string,
  description: string,
  fallback: T,
  extras: FlagExtras<T> = {},
): Flag<T> {
  const option = declare(flags, description, extras).default(fallback);
  return { options: [option], value: (raw) => (raw[option.attributeName()] ?? fallback) as T };
}

/** A flag whose parsed value is converted into the configuration's form. */
export function converted<T, U>(entry: Flag<T>, convert: (value: T) => U): Flag<U> {
  return { options: entry.options, value: (raw) => convert(entry.value(raw)) };
}

/** A switch: true when given. */
export function toggle(flags: string, description: string): Flag<boolean> {
  return converted(flag<boolean>(flags, description), (v) => v === true);
}

/** Collects a repeatable flag's values in order. */
export function repeated(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** Declares every flag of `table` on `command`, in table order. */
export function addFlags(command: Command, table: FlagTable): Command {
  const added = new Set<Option>();
  for (const entry of Object.values(table)) {
    for (const option of entry.options) {
      if (added.has(option)) continue; // two fields read one flag (a value and whether it was given)
      added.add(option);
      command.addOption(option);
    }
  }
  return command;
}

/** Reads commander's option bag through `table`. */
export function readFlags<T extends FlagTable>(
  table: T,
  raw: Record<string, unknown>,
): FlagValues<T> {
  return Object.fromEntries(
    Object.entries(table).map(([key, entry]) => [key, entry.value(raw)]),
  ) as FlagValues<T>;
}

function declare<T>(flags: string, description: string, extras: FlagExtras<T>): Option {
  const option = new Option(flags, description);
  if (extras.parse) option.argParser(extras.parse);
  if (extras.env) option.env(extras.env);
  if (extras.choices) option.choices(extras.choices);
  return option;
}
