/**
 * Finds, loads and sets up plugins. Third-party plugins take exactly one path, the same under
 * `deno run` and in the compiled binary: read → strip types → link into a `data:` URL → import
 * (see `link.ts`). Built-ins are `PluginModule` objects registered through the same validation,
 * setup and ordering. A plugin that fails to load is reported with its file and the reason, and
 * the rest load normally.
 *
 * With isolation on (the default), third-party code first runs in a Worker with no permissions
 * (to read its manifest), then in one with only the permissions it declares. A DNS-mode plugin
 * cannot run isolated — it changes system files — so it loads, in-process, only when the user
 * names it (`--allow-unisolated NAME`). As root, plugin files and folders must be owned by root
 * or the user who ran sudo and writable by no one else (`file_trust.ts`).
 */
import { deadline } from "../deadline.ts";
import { dirname, join, resolve } from "node:path";
import {
  API_VERSION,
  DialError,
  type PluginContext,
  type PluginModule,
  type PluginParts,
} from "../../mod.ts";
import { pluginLogger } from "../log.ts";
import { DialsInProgress } from "./dials_in_progress.ts";
import { assertTrustedPath, pluginFileCheck, rootCodeOwners } from "./file_trust.ts";
import { guardParts } from "./guard.ts";
import { type LinkedPlugin, linkPlugin } from "./link.ts";
import { validateParts, validatePluginModule } from "./manifest.ts";
import { probeManifest, startIsolatedPlugin } from "./isolation/host.ts";
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
      const pluginName = /\.(ts|js|mjs)$/.test(entry.name) &&
        !/(_test|\.d)\.(ts|js)$/.test(entry.name);
      // A symlink is followed (the loader checks its target like any plugin file); one that
      // leads nowhere is listed anyway, so that loading it reports why instead of skipping it.
      const kind = entry.isSymlink ? await Deno.stat(path).catch(() => undefined) : entry;
      if (entry.isSymlink && kind === undefined) {
        if (pluginName) entries.push(path);
        else entries.push(join(path, "mod.ts"));
      } else if (kind?.isFile && pluginName) {
        entries.push(path);
      } else if (kind?.isDirectory) {
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

/**
 * Loads, validates and sets up one third-party plugin in-process, with all of k8stun's
 * permissions: for trusted code only (see {@link loadThirdPartyPlugin}).
 */
export async function loadPluginFile(entry: string, env: PluginEnvironment): Promise<LoadedPlugin> {
  return importPlugin(await linkThirdParty(entry, env), entry, env);
}

/**
 * Loads one third-party plugin the way the environment asks: isolated unless isolation is off,
 * or the plugin provides a DNS mode and the user allowed it to run unisolated. Running code
 * unisolated is reported through `warn`.
 */
export async function loadThirdPartyPlugin(
  entry: string,
  env: PluginEnvironment,
  warn: (message: string) => void,
): Promise<LoadedPlugin> {
  const linked = await linkThirdParty(entry, env);
  if (env.isolate !== true) {
    warn(
      `plugin ${entry} runs in-process with all of k8stun's permissions (plugin isolation is off)`,
    );
    return importPlugin(linked, entry, env);
  }
  const manifest = await probeManifest(linked, entry);
  if (!manifest.kinds.includes("dns-mode")) {
    return startIsolatedPlugin(linked, manifest, entry, env);
  }
  if (!env.allowUnisolated?.includes(manifest.name)) {
    throw new Error(
      `${entry}: plugin "${manifest.name}" provides a DNS mode, which changes system files and ` +
        "so cannot run isolated; it was not loaded. If you trust its code, allow it to run " +
        `with all of k8stun's permissions: --allow-unisolated ${manifest.name}`,
    );
  }
  warn(
    `plugin "${manifest.name}" (${entry}) runs in-process with all of k8stun's permissions ` +
      `(--allow-unisolated ${manifest.name})`,
  );
  const loaded = await importPlugin(linked, entry, env);
  if (loaded.name !== manifest.name) {
    throw new Error(
      `${entry}: the plugin named itself "${manifest.name}" when probed but "${loaded.name}" ` +
        "when loaded; refusing it",
    );
  }
  return loaded;
}

/** Links a third-party plugin, checking its files' owners and modes when running as root. */
function linkThirdParty(entry: string, env: PluginEnvironment): Promise<LinkedPlugin> {
  const owners = codeOwners(env);
  return linkPlugin(resolve(entry), { checkFile: owners && pluginFileCheck(owners) });
}

function codeOwners(env: PluginEnvironment): number[] | undefined {
  return env.codeOwners === undefined ? rootCodeOwners() : env.codeOwners ?? undefined;
}

/** Imports a linked plugin into this process and sets it up. */
async function importPlugin(
  linked: LinkedPlugin,
  entry: string,
  env: PluginEnvironment,
): Promise<LoadedPlugin> {
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
  // Third-party dialers may pass on only the dials they handle (built-ins are trusted code).
  const dials = new DialsInProgress(plugin.name);
  const parts = await setupPlugin(plugin, entry, env, linked.describe, dials);
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
  files: string[] = [],
): Promise<{ plugins: LoadedPlugin[]; failures: PluginFailure[]; warnings: string[] }> {
  const plugins: LoadedPlugin[] = [];
  const failures: PluginFailure[] = [];
  const warnings: string[] = [];
  for (const builtin of builtins) plugins.push(await loadBuiltin(builtin, env));
  const owners = codeOwners(env);
  const sources = [
    ...dirs.map((dir) => ({ dir, entries: () => discoverPlugins(dir) })),
    // A plugin file given by itself (`plugins check FILE`): its folder is its plugin directory.
    ...files.map((file) => ({ dir: dirname(resolve(file)), entries: () => [resolve(file)] })),
  ];
  for (const source of sources) {
    let entries: string[];
    try {
      entries = await source.entries();
      if (owners && entries.length > 0) {
        await assertTrustedPath(await Deno.realPath(source.dir), "plugin directory", owners);
      }
    } catch (error) {
      failures.push({ source: source.dir, message: (error as Error).message });
      continue;
    }
    for (const entry of entries) {
      try {
        const loaded = await loadThirdPartyPlugin(entry, env, (w) => warnings.push(w));
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
  return { plugins: ordered, failures, warnings };
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
  dials?: DialsInProgress,
): Promise<PluginParts> {
  const ctx: PluginContext = {
    log: pluginLogger(plugin.name),
    cluster: env.cluster,
    config: env.config?.[plugin.name] ?? {},
    apiVersion: API_VERSION,
    DialError,
    dialNext: async (target, options) => {
      if (!env.dialers) throw new DialError("unreachable", "no dialer chain in this context");
      if (!dials) return env.dialers.dialAfter(plugin.name, target, options);
      const wrapped = dials.continuing(target);
      return await env.dialers.dialAfter(plugin.name, wrapped.target, {
        ...options,
        flow: wrapped.options.flow,
      });
    },
  };
  const limit = env.setupTimeoutMs ?? 10_000;
  try {
    const parts = await deadline(
      () => plugin.setup(ctx),
      limit,
      () => new Error(`setup did not finish within ${limit} ms`),
    );
    const valid = validateParts(parts, plugin, source);
    return dials ? { ...valid, dialers: valid.dialers?.map((d) => dials.track(d)) } : valid;
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
