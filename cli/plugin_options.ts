/** Parsing of `--plugin-config NAME.KEY=VALUE` flags into per-plugin configuration. */

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
