/** The plugin flags' parsing (`--plugin-config NAME.KEY=VALUE`) and plugin load reports. */
import type { Logger } from "@logtape/logtape";
import { logger } from "../core/log.ts";
import type { PluginFailure } from "../core/plugins/types.ts";

/** `["a.x=1", "a.y=2", "b.z=3"]` → `{ a: { x: "1", y: "2" }, b: { z: "3" } }`. */
export function parsePluginConfig(values: string[]): Record<string, Record<string, string>> {
  const config: Record<string, Record<string, string>> = {};
  for (const value of values) {
    const match = /^([A-Za-z0-9][A-Za-z0-9._-]*)\.([A-Za-z0-9_-]+)=(.*)$/s.exec(value);
    if (!match) {
      throw new Error(`--plugin-config "${value}" must look like PLUGIN.KEY=VALUE`);
    }
    (config[match[1]] ??= {})[match[2]] = match[3];
  }
  return config;
}

/**
 * Reports what went wrong loading plugins as log lines on stderr: stdout is the command's own
 * output (the session banner, a table), which scripts read.
 */
export function reportPluginLoad(
  result: { warnings: string[]; failures: PluginFailure[] },
  log: Logger = logger("plugins"),
): void {
  for (const w of result.warnings) log.warn(w);
  for (const f of result.failures) log.error(`plugin not loaded: ${f.message}`);
}
