/**
 * Validation of what a plugin module exports: the `plugin` object of `mod.ts`'s `PluginModule`
 * shape, and the parts its `setup` returns. Every failure names the field and what was expected.
 */
import {
  API_VERSION,
  type Dialer,
  type DnsMode,
  type PluginKind,
  type PluginModule,
  type PluginParts,
  type Resolver,
} from "../../mod.ts";

const KINDS: PluginKind[] = ["resolver", "dialer", "dns-mode"];

/** A plugin that does not meet the contract. */
export class PluginContractError extends Error {
  constructor(readonly file: string, detail: string) {
    super(`${file}: ${detail}`);
    this.name = "PluginContractError";
  }
}

/** Checks a module namespace for a valid `plugin` export and returns it. */
export function validatePluginModule(
  namespace: Record<string, unknown>,
  file: string,
): PluginModule {
  const plugin = namespace.plugin as Partial<PluginModule> | undefined;
  const fail = (detail: string): never => {
    throw new PluginContractError(file, detail);
  };
  if (plugin === undefined || plugin === null || typeof plugin !== "object") {
    fail(
      'missing export "plugin" (export const plugin: PluginModule = { name, version, apiVersion, kinds, setup })',
    );
  }
  const p = plugin as Partial<PluginModule>;
  if (typeof p.name !== "string" || !/^[a-z0-9][a-z0-9._-]*$/i.test(p.name)) {
    fail("plugin.name must be a non-empty name of letters, digits, '.', '_' or '-'");
  }
  if (typeof p.version !== "string" || p.version === "") fail("plugin.version must be a string");
  if (p.apiVersion !== API_VERSION) {
    fail(
      `plugin "${p.name}" was written for plugin API version ${
        String(p.apiVersion)
      }, this k8stun provides version ${API_VERSION}`,
    );
  }
  if (!Array.isArray(p.kinds) || p.kinds.length === 0 || p.kinds.some((k) => !KINDS.includes(k))) {
    fail(`plugin.kinds must list one or more of ${KINDS.join(", ")}`);
  }
  if (typeof p.setup !== "function") fail("plugin.setup must be a function (ctx) => parts");
  if (p.priority !== undefined && !Number.isFinite(p.priority)) {
    fail("plugin.priority must be a number");
  }
  return p as PluginModule;
}

/** Checks what `setup` returned against the kinds the plugin declared. */
export function validateParts(parts: unknown, plugin: PluginModule, file: string): PluginParts {
  const fail = (detail: string): never => {
    throw new PluginContractError(file, `plugin "${plugin.name}": ${detail}`);
  };
  if (parts === null || typeof parts !== "object") {
    fail("setup(ctx) must return an object of parts");
  }
  const p = parts as PluginParts;
  const declared = (kind: PluginKind, present: unknown[] | undefined) => {
    if (present && present.length > 0 && !plugin.kinds.includes(kind)) {
      fail(`setup returned ${kind}s but kinds does not list "${kind}"`);
    }
  };
  declared("resolver", p.resolvers);
  declared("dialer", p.dialers);
  declared("dns-mode", p.dnsModes);
  for (const r of p.resolvers ?? []) checkResolver(r, fail);
  for (const d of p.dialers ?? []) checkDialer(d, fail);
  for (const m of p.dnsModes ?? []) checkDnsMode(m, fail);
  const total = (p.resolvers?.length ?? 0) + (p.dialers?.length ?? 0) + (p.dnsModes?.length ?? 0);
  if (total === 0) fail("setup returned no resolvers, dialers or DNS modes");
  return p;
}

function checkResolver(r: Resolver, fail: (d: string) => never): void {
  if (typeof r?.name !== "string") fail("a resolver needs a name");
  if (typeof r.resolveName !== "function" && typeof r.resolveAddress !== "function") {
    fail(`resolver "${r.name}" needs resolveName(name) and/or resolveAddress(address)`);
  }
}

function checkDialer(d: Dialer, fail: (d: string) => never): void {
  if (typeof d?.name !== "string") fail("a dialer needs a name");
  if (typeof d.accepts !== "function" || typeof d.dial !== "function") {
    fail(`dialer "${d.name}" needs accepts(target) and dial(target, options)`);
  }
}

function checkDnsMode(m: DnsMode, fail: (d: string) => never): void {
  if (typeof m?.name !== "string") fail("a DNS mode needs a name");
  if (typeof m.apply !== "function" || typeof m.revert !== "function") {
    fail(`DNS mode "${m.name}" needs apply(ctx) and revert(ctx)`);
  }
}
