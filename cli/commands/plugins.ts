/**
 * `k8stun plugins`: `list` (built-in and loaded plugins in effective order), `check DIR` (load
 * and validate without running the tunnel), `bundle DIR|FILE` (the one-file form for the binary).
 * `list` and `check` load third-party code exactly as `run` does — isolated, with only the
 * permissions it declares — since they too run as root.
 */
import { resolve } from "node:path";
import type { Command } from "commander";
import type { ClusterReader } from "../../mod.ts";
import { bundlePlugin } from "../../core/plugins/bundle.ts";
import { defaultPluginDir, loadPlugins } from "../../core/plugins/loader.ts";
import type { LoadedPlugin, PluginEnvironment, PluginFailure } from "../../core/plugins/types.ts";
import { allBuiltins } from "../../plugins/builtin.ts";
import { parsePluginConfig, reportPluginLoad } from "../plugin_options.ts";

/** A cluster with nothing in it, for loading plugins without a tunnel. */
const EMPTY_CLUSTER: ClusterReader = {
  namespaces: () => [],
  hasService: () => false,
  hasPod: () => false,
};

/** Registers `plugins` and its subcommands. */
export function registerPlugins(program: Command): void {
  const plugins = program.command("plugins").description("list, check and bundle plugins");
  plugins.command("list")
    .description(
      "show every built-in plugin (active or not) and the loaded ones, in effective order",
    )
    .option(
      "--plugin-dir <dir>",
      "plugin directory (repeatable)",
      collect,
      [],
    )
    .option("--plugin-config <name.key=value>", "plugin configuration (repeatable)", collect, [])
    .option(ALLOW_UNISOLATED, ALLOW_UNISOLATED_HELP, collect, [])
    .option("--json", "print JSON")
    .action(async (options: ListOptions & { pluginDir: string[]; json?: boolean }) => {
      const dirs = options.pluginDir.length > 0 ? options.pluginDir : [defaultPluginDir()];
      const builtins = allBuiltins();
      const result = await loadPlugins(
        builtins.map((b) => b.plugin),
        dirs,
        loadEnvironment(options),
      );
      for (const p of result.plugins) p.close?.();
      const inactive = new Map(
        builtins.filter((b) => b.inactiveBecause).map((b) => [b.plugin.name, b.inactiveBecause!]),
      );
      const listed = result.plugins.map((plugin) => ({
        plugin,
        inactiveBecause: plugin.builtin ? inactive.get(plugin.name) : undefined,
      }));
      if (options.json) {
        console.log(JSON.stringify(listJson(listed, result.failures), null, 2));
      } else {
        reportPluginLoad(result);
        console.log(formatPluginTable(listed, dirs));
      }
    });
  plugins.command("check")
    .description("load and validate the plugins in DIR without running the tunnel")
    .argument("<dir>", "plugin directory, or one plugin file")
    .option("--plugin-config <name.key=value>", "plugin configuration (repeatable)", collect, [])
    .option(ALLOW_UNISOLATED, ALLOW_UNISOLATED_HELP, collect, [])
    .action(async (dir: string, options: ListOptions) => {
      const stat = await Deno.stat(dir).catch(() => {
        throw new Error(`${dir}: no such file or directory`);
      });
      const env = loadEnvironment(options);
      const { plugins, failures, warnings } = stat.isFile
        ? await loadPlugins([], [], env, [dir])
        : await loadPlugins([], [dir], env);
      for (const p of plugins) p.close?.();
      // check's report: warnings and errors on stderr, what loaded on stdout.
      for (const w of warnings) console.error(`warning: ${w}`);
      for (const p of plugins) {
        console.log(
          `ok    ${p.name} ${p.version} (${
            p.kinds.join(", ")
          }; priority ${p.priority}) — ${p.source}`,
        );
      }
      for (const f of failures) console.error(`error ${f.message}`);
      if (plugins.length === 0 && failures.length === 0) console.log(`no plugins found in ${dir}`);
      if (failures.length > 0) Deno.exitCode = 1;
    });
  plugins.command("bundle")
    .description("bundle a multi-file plugin into one file that the k8stun binary can load")
    .argument("<plugin>", "plugin folder (with mod.ts) or entry file")
    .option("-o, --output <file>", "output file (default: <name>.bundle.js beside the plugin)")
    .action(async (plugin: string, options: { output?: string }) => {
      const path = resolve(plugin);
      const stat = await Deno.stat(path).catch(() => {
        throw new Error(`${plugin}: no such file or directory`);
      });
      const entry = stat.isDirectory ? await folderEntry(path) : path;
      const text = await bundlePlugin(entry);
      const output = options.output ??
        `${stat.isDirectory ? path : path.replace(/\.(ts|js|mjs)$/, "")}.bundle.js`;
      await Deno.writeTextFile(output, text);
      console.log(`wrote ${output} — copy it into your plugin directory`);
    });
}

interface ListOptions {
  pluginConfig: string[];
  allowUnisolated: string[];
}

const ALLOW_UNISOLATED = "--allow-unisolated <name>";
const ALLOW_UNISOLATED_HELP =
  "let this plugin run in-process with all permissions (DNS-mode plugins need it; repeatable)";

/** Loads third-party plugins isolated, as `run` does. */
function loadEnvironment(options: ListOptions): PluginEnvironment {
  return {
    cluster: EMPTY_CLUSTER,
    config: parsePluginConfig(options.pluginConfig),
    isolate: true,
    allowUnisolated: options.allowUnisolated,
  };
}

async function folderEntry(dir: string): Promise<string> {
  for (const name of ["mod.ts", "mod.js"]) {
    try {
      if ((await Deno.stat(`${dir}/${name}`)).isFile) return `${dir}/${name}`;
    } catch {
      // try the next name
    }
  }
  throw new Error(`${dir}: a plugin folder needs a mod.ts (or mod.js) entry file`);
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** A plugin `list` shows: loaded, and, for a built-in left off, why. */
export interface ListedPlugin {
  plugin: LoadedPlugin;
  inactiveBecause?: string;
}

/** Effective order (1-based) of the active plugins; inactive ones have none. */
function effectiveOrder(listed: ListedPlugin[]): (number | undefined)[] {
  let order = 0;
  return listed.map((l) => l.inactiveBecause === undefined ? ++order : undefined);
}

function listJson(listed: ListedPlugin[], failures: PluginFailure[]) {
  const order = effectiveOrder(listed);
  return {
    plugins: listed.map(({ plugin: p, inactiveBecause }, i) => ({
      order: order[i] ?? null,
      state: inactiveBecause === undefined ? "active" : "inactive",
      ...(inactiveBecause === undefined ? {} : { inactive_because: inactiveBecause }),
      name: p.name,
      version: p.version,
      kinds: p.kinds,
      priority: p.priority,
      source: p.source,
      resolvers: p.parts.resolvers?.map((r) => r.name) ?? [],
      dialers: p.parts.dialers?.map((d) => d.name) ?? [],
      dns_modes: p.parts.dnsModes?.map((m) => m.name) ?? [],
    })),
    failures,
  };
}

/** The `plugins list` table. */
export function formatPluginTable(listed: ListedPlugin[], dirs: string[]): string {
  const order = effectiveOrder(listed);
  const rows = listed.map(({ plugin: p, inactiveBecause }, i) => [
    String(order[i] ?? "-"),
    p.name,
    p.version,
    p.kinds.join(","),
    String(p.priority),
    inactiveBecause === undefined ? "active" : "inactive",
    [
      ...(p.parts.resolvers ?? []).map((r) => `resolver:${r.name}`),
      ...(p.parts.dialers ?? []).map((d) => `dialer:${d.name}`),
      ...(p.parts.dnsModes ?? []).map((m) => `dns-mode:${m.name}`),
    ].join(" "),
    p.source,
  ]);
  const header = ["#", "NAME", "VERSION", "KINDS", "PRIORITY", "STATE", "PROVIDES", "SOURCE"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd();
  const out = [line(header), ...rows.map(line)];
  out.push("");
  for (const { plugin, inactiveBecause } of listed) {
    if (inactiveBecause !== undefined) out.push(`${plugin.name} is inactive: ${inactiveBecause}`);
  }
  out.push(`plugin directories: ${dirs.join(", ")}`);
  out.push("order: lower priority first; resolvers and dialers are consulted in this order");
  return out.join("\n");
}
