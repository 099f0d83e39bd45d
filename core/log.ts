/**
 * Logging setup over `@logtape/logtape`. Categories start with "k8stun"; the CLI configures the
 * sink once from `--log-level` and `--log-format`.
 */
import {
  configure,
  getJsonLinesFormatter,
  getLogger,
  getTextFormatter,
  type Logger,
  type LogLevel,
  type LogRecord,
  reset,
} from "@logtape/logtape";
import type { PluginLogger } from "../mod.ts";

const encoder = new TextEncoder();
const stderr = Deno.stderr;

/** Levels accepted by `--log-level` (any case; `warn` and `warning` are the same). */
export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "off"] as const;

/** Output formats accepted by `--log-format`. */
export const LOG_FORMATS = ["text", "json"] as const;

/** Parses a `--log-level` value, or throws an error listing the valid values. */
export function parseLogLevel(value: string): LogLevel | "off" {
  const v = value.trim().toLowerCase();
  const normalised = v === "warning" ? "warn" : v;
  if ((LOG_LEVELS as readonly string[]).includes(normalised)) {
    return normalised === "warn" ? "warning" : normalised as LogLevel | "off";
  }
  throw new Error(`invalid log level "${value}" (valid: ${LOG_LEVELS.join(", ")})`);
}

/** C0 controls but the tab, DEL and the C1 controls. */
// deno-lint-ignore no-control-regex
const CONTROLS_BUT_TAB = /[\x00-\x08\x0a-\x1f\x7f-\x9f]/g;

/**
 * A text log line with its control characters shown as escapes (`\n`, `\x1b`): a value that came
 * from elsewhere — a DNS name asked for, a server's message — can neither start a forged line nor
 * drive the terminal. (JSON lines escape them already.) Tabs stay.
 */
export function visibleControls(line: string): string {
  return line.replace(
    CONTROLS_BUT_TAB,
    (c) =>
      c === "\n"
        ? "\\n"
        : c === "\r"
        ? "\\r"
        : `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`,
  );
}

/** Configures logging for the process. Logs go to stderr so stdout stays for command output. */
export async function setupLogging(
  level: LogLevel | "off",
  format: (typeof LOG_FORMATS)[number],
  options: { source?: boolean; libLevel?: LogLevel | "off" } = {},
): Promise<void> {
  const formatter = format === "json" ? getJsonLinesFormatter() : getTextFormatter({
    timestamp: "time",
    level: "ABBR",
    value: "bare", // names and addresses as people write them, without quotes
    category: (c) => c.slice(1).join("."),
    format: (v) =>
      `${v.timestamp} [${v.level}] ${options.source ? `${v.category}: ` : ""}${v.message}${
        unmentionedProperties(v.record)
      }`,
  });
  const lib = options.libLevel ?? "warning";
  await reset();
  await configure({
    sinks: {
      stderr: (record) => {
        const line = formatter(record).replace(/\n$/, "");
        stderr.writeSync(encoder.encode((format === "json" ? line : visibleControls(line)) + "\n"));
      },
    },
    loggers: [
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["stderr"] },
      ...(level === "off" ? [] : [{ category: ["k8stun"], lowestLevel: level, sinks: ["stderr"] }]),
      ...(lib === "off" ? [] : [{ category: ["lib"], lowestLevel: lib, sinks: ["stderr"] }]),
    ],
    reset: true,
  });
}

/**
 * The properties a text line's message does not show, as ` key=value` pairs: a plugin's
 * `ctx.log.info("dialed", { pod })` passes them beside the message, not in a `{pod}` placeholder.
 * JSON lines carry every property already.
 */
function unmentionedProperties(record: LogRecord): string {
  const template = typeof record.rawMessage === "string"
    ? record.rawMessage
    : record.rawMessage.join("");
  return Object.entries(record.properties)
    .filter(([key]) => !template.includes(`{${key}}`))
    .map(([key, value]) => ` ${key}=${propertyText(value)}`)
    .join("");
}

function propertyText(value: unknown): string {
  if (typeof value === "string" && /^[^\s"=]+$/.test(value)) return value;
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/** The logger for a component, e.g. `logger("dns")`. */
export function logger(...category: string[]): Logger {
  return getLogger(["k8stun", ...category]);
}

/** A {@link PluginLogger} that prefixes nothing but logs under `k8stun.plugin.<name>`. */
export function pluginLogger(name: string): PluginLogger {
  const log = logger("plugin", name);
  return {
    debug: (m, p) => log.debug(m, p),
    info: (m, p) => log.info(m, p),
    warn: (m, p) => log.warn(m, p),
    error: (m, p) => log.error(m, p),
  };
}
