/**
 * Finds, loads and sets up plugins. Third-party plugins take exactly one path, the same under
 * `deno run` and in the compiled binary: read → strip types → link into a `data:` URL → import
 * (see `link.ts`). Built-ins are `PluginModule` objects registered through the same validation,
 * setup and ordering. A plugin that fails to load is reported with its file and the reason, and
 * the rest load normally.
 */
import { join, resolve } from "node:path";
import {
  API_VERSION,
  DialError,
  type PluginContext,
  type PluginModule,
  type PluginParts,
} from "../../mod.ts";
import { pluginLogger } from "../log.ts";
import { guardParts } from "./guard.ts";
import { linkPlugin } from "./link.ts";
import { validateParts, validatePluginModule } from "./manifest.ts";
import { loadIsolatedPlugin } from "./isolation/host.ts";
import {
  DEFAULT_PRIORITY,
  type LoadedPlugin,
  type PluginEnvironment,
  type PluginFailure,
} from "./types.ts";

/** Where plugins are looked for when no `--plugin-dir` is given. */
export function defaultPluginDir(env: (name: string) => string | undefined = Deno.env.get): string {
  const config = env("XDG_CONFIG_HOME") ?? `${env("HOME") ?? "."}/.config`;
  return `${config}/k8stun/plugins`;
}

/**
 * Lists plugin entry files in a directory: `*.ts` / `*.js` files (not tests or declarations) and
 * folders with a `mod.ts` or `mod.js`. A missing directory is not an error (it has no plugins).
 */
export async function discoverPlugins(dir: string): Promise<string[]> {
  const root = resolve(dir);
  const entries: string[] = [];
  try {
    for await (const entry of Deno.readDir(root)) {
      const path = join(root, entry.name);
      if (entry.name.startsWith(".")) continue;
      if (
        entry.isFile && /\.(ts|js|mjs)$/.test(entry.name) &&
        !/(_test|\.d)\.(ts|js)$/.test(entry.name)
      ) {
        entries.push(path);
      } else if (entry.isDirectory) {
        for (const name of ["mod.ts", "mod.js"]) {
          if (await isFile(join(path, name))) {
            entries.push(join(path, name));
            break;
          }
        }
      }
    }
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw new Error(`cannot read plugin directory ${root}: ${(error as Error).message}`);
  }
  return entries.sort();
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

/** Loads, validates and sets up one third-party plugin from its entry file. */
export async function loadPluginFile(entry: string, env: PluginEnvironment): Promise<LoadedPlugin> {
  const linked = await linkPlugin(resolve(entry));
  let namespace: Record<string, unknown>;
  try {
    namespace = await import(linked.url);
  } catch (error) {
    const text = linked.describe(error instanceof Error ? error.message : String(error));
    const at = /\n\s+at (\S+:\d+:\d+)\s*$/.exec(text);
    if (text.startsWith("SyntaxError: ") && at) {
      const detail = text.slice("SyntaxError: ".length).split("\n")[0];
      throw new Error(`${at[1]}: syntax error: ${detail}`);
    }
    throw new Error(`${entry}: failed to load: ${text}`);
  }
  const plugin = validatePluginModule(namespace, entry);
  const parts = await setupPlugin(plugin, entry, env, linked.describe);
  return describePlugin(plugin, entry, false, guardParts(plugin.name, parts, linked.describe));
}

/** Registers a built-in plugin through the same validation and setup as third-party ones. */
export async function loadBuiltin(
  plugin: PluginModule,
  env: PluginEnvironment,
): Promise<LoadedPlugin> {
  validatePluginModule({ plugin }, `built-in ${plugin.name}`);
  const parts = await setupPlugin(plugin, `built-in ${plugin.name}`, env, (t) => t);
  return describePlugin(plugin, "built-in", true, parts);
}

/**
 * Loads built-ins and every plugin in `dirs`. Failures are collected, never thrown, so one broken
 * plugin leaves the others and the tunnel working. The result is in effective order.
 */
export async function loadPlugins(
  builtins: PluginModule[],
  dirs: string[],
  env: PluginEnvironment,
): Promise<{ plugins: LoadedPlugin[]; failures: PluginFailure[] }> {
  const plugins: LoadedPlugin[] = [];
  const failures: PluginFailure[] = [];
  for (const builtin of builtins) plugins.push(await loadBuiltin(builtin, env));
  const isolate = env.isolate === true;
  for (const dir of dirs) {
    let entries: string[];
    try {
      entries = await discoverPlugins(dir);
    } catch (error) {
      failures.push({ source: dir, message: (error as Error).message });
      continue;
    }
    for (const entry of entries) {
      try {
        const loaded = (isolate ? await loadIsolatedPlugin(entry, env) : undefined) ??
          await loadPluginFile(entry, env);
        const clash = plugins.find((p) => p.name === loaded.name);
        if (clash) {
          throw new Error(
            `${entry}: a plugin named "${loaded.name}" is already loaded from ${clash.source}`,
          );
        }
        plugins.push(loaded);
      } catch (error) {
        failures.push({ source: entry, message: (error as Error).message });
      }
    }
  }
  const ordered = orderPlugins(plugins);
  env.dialers?.set(ordered);
  return { plugins: ordered, failures };
}

/** Effective order: by priority, then third-party before built-in, then by name. */
export function orderPlugins(plugins: LoadedPlugin[]): LoadedPlugin[] {
  return [...plugins].sort((a, b) =>
    a.priority - b.priority || Number(a.builtin) - Number(b.builtin) || a.name.localeCompare(b.name)
  );
}

async function setupPlugin(
  plugin: PluginModule,
  source: string,
  env: PluginEnvironment,
  describe: (text: string) => string,
): Promise<PluginParts> {
  const ctx: PluginContext = {
    log: pluginLogger(plugin.name),
    cluster: env.cluster,
    config: env.config?.[plugin.name] ?? {},
    apiVersion: API_VERSION,
    DialError,
    dialNext: (target, options) => {
      if (!env.dialers) throw new DialError("unreachable", "no dialer chain in this context");
      return env.dialers.dialAfter(plugin.name, target, options);
    },
  };
  const limit = env.setupTimeoutMs ?? 10_000;
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const parts = await Promise.race([
      Promise.resolve().then(() => plugin.setup(ctx)),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`setup did not finish within ${limit} ms`)),
          limit,
        );
      }),
    ]);
    return validateParts(parts, plugin, source);
  } catch (error) {
    if (error instanceof Error && error.name === "PluginContractError") throw error;
    const text = error instanceof Error ? error.message : String(error);
    const frame = error instanceof Error && error.stack
      ? describe(error.stack).split("\n").find((l) => /^\s+at /.test(l))?.trim()
      : undefined;
    throw new Error(
      `${source}: plugin "${plugin.name}" setup failed: ${describe(text)}${
        frame ? ` (${frame})` : ""
      }`,
    );
  } finally {
    clearTimeout(timer);
  }
}

function describePlugin(
  plugin: PluginModule,
  source: string,
  builtin: boolean,
  parts: PluginParts,
): LoadedPlugin {
  return {
    name: plugin.name,
    version: plugin.version,
    kinds: [...plugin.kinds],
    priority: plugin.priority ?? (builtin ? 100 : DEFAULT_PRIORITY),
    source,
    builtin,
    permissions: plugin.permissions,
    parts,
  };
}

/** Flattens loaded plugins' parts, in effective order. */
export function collectParts(plugins: LoadedPlugin[]): Required<PluginParts> {
  return {
    resolvers: plugins.flatMap((p) => p.parts.resolvers ?? []),
    dialers: plugins.flatMap((p) => p.parts.dialers ?? []),
    dnsModes: plugins.flatMap((p) => p.parts.dnsModes ?? []),
  };
}
