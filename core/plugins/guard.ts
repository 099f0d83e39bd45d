/**
 * Isolation of plugin code inside the process: a resolver, dialer or DNS mode that throws, rejects
 * or hangs fails only the flow (or query) at hand, as a `DialError` naming the plugin, and is
 * logged once per distinct failure. The tunnel itself never sees the exception.
 */
import { deadline } from "../deadline.ts";
import {
  type Dialer,
  DialError,
  type DnsMode,
  type PluginParts,
  type Resolver,
  type Target,
} from "../../mod.ts";
import { logger } from "../log.ts";

/** Time limits for plugin calls. */
export interface GuardLimits {
  /** A resolver call (default 2 s). */
  resolveMs: number;
  /** A dial, up to the open stream (default 15 s). */
  dialMs: number;
  /** DNS mode apply/revert (default 10 s). */
  dnsModeMs: number;
}

/** Default limits. */
export const DEFAULT_LIMITS: GuardLimits = { resolveMs: 2_000, dialMs: 15_000, dnsModeMs: 10_000 };

const log = logger("plugins");

/** Wraps every part a plugin contributed. `describe` maps stack positions back to its files. */
export function guardParts(
  plugin: string,
  parts: PluginParts,
  describe: (text: string) => string = (t) => t,
  limits: GuardLimits = DEFAULT_LIMITS,
): PluginParts {
  const report = failureReporter(plugin, describe);
  return {
    resolvers: parts.resolvers?.map((r) => guardResolver(r, report, limits)),
    dialers: parts.dialers?.map((d) => guardDialer(d, report, limits)),
    dnsModes: parts.dnsModes?.map((m) => guardDnsMode(m, report, limits)),
  };
}

type Report = (what: string, error: unknown) => DialError;

/** Logs a failure once per distinct message, and turns it into a `DialError` naming the plugin. */
function failureReporter(plugin: string, describe: (text: string) => string): Report {
  const seen = new Set<string>();
  return (what, error) => {
    if (error instanceof DialError && error.message.startsWith(`plugin ${plugin}:`)) return error;
    const raw = error instanceof Error ? error.message : String(error);
    const message = describe(raw);
    const where = error instanceof Error && error.stack
      ? firstFrame(describe(error.stack))
      : undefined;
    const key = `${what}|${message}`;
    if (!seen.has(key)) {
      seen.add(key);
      if (seen.size > 1000) seen.clear();
      log.error("plugin {plugin}: {what} failed: {message}{where}", {
        plugin,
        what,
        message,
        where: where ? ` (at ${where})` : "",
      });
    }
    const reason = error instanceof DialError ? error.reason : "error";
    return new DialError(reason, `plugin ${plugin}: ${what}: ${message}`, { cause: error });
  };
}

function firstFrame(stack: string): string | undefined {
  const frame = stack.split("\n").find((line) => /^\s+at /.test(line));
  return frame?.trim().replace(/^at /, "");
}

/** `work`'s result, or a timeout `DialError` after `ms`. */
function within<T>(ms: number, what: string, work: () => T | Promise<T>): Promise<T> {
  return deadline(
    work,
    ms,
    () => new DialError("timeout", `${what} did not finish within ${ms} ms`),
  );
}

function guardResolver(r: Resolver, report: Report, limits: GuardLimits): Resolver {
  const call = async (what: string, fn: () => Target | null | Promise<Target | null>) => {
    try {
      return await within(limits.resolveMs, what, fn);
    } catch (error) {
      throw report(what, error);
    }
  };
  return {
    name: r.name,
    resolveName: r.resolveName &&
      ((name) => call(`resolver ${r.name} resolveName(${name})`, () => r.resolveName!(name))),
    resolveAddress: r.resolveAddress &&
      ((address) =>
        call(`resolver ${r.name} resolveAddress(${address})`, () => r.resolveAddress!(address))),
  };
}

function guardDialer(d: Dialer, report: Report, limits: GuardLimits): Dialer {
  return {
    name: d.name,
    async accepts(target) {
      try {
        return (await within(
          limits.resolveMs,
          `dialer ${d.name} accepts()`,
          () => d.accepts(target),
        )) ===
          true;
      } catch (error) {
        report(`dialer ${d.name} accepts()`, error);
        return false;
      }
    },
    async dial(target, options) {
      try {
        return await within(
          limits.dialMs,
          `dialer ${d.name} dial()`,
          () => d.dial(target, options),
        );
      } catch (error) {
        throw report(`dialer ${d.name} dial()`, error);
      }
    },
    close: d.close && (async () => {
      try {
        await within(limits.dnsModeMs, `dialer ${d.name} close()`, () => d.close!());
      } catch (error) {
        report(`dialer ${d.name} close()`, error);
      }
    }),
  };
}

function guardDnsMode(m: DnsMode, report: Report, limits: GuardLimits): DnsMode {
  return {
    name: m.name,
    async apply(ctx) {
      try {
        await within(limits.dnsModeMs, `DNS mode ${m.name} apply()`, () => m.apply(ctx));
      } catch (error) {
        throw report(`DNS mode ${m.name} apply()`, error);
      }
    },
    async revert(ctx) {
      try {
        await within(limits.dnsModeMs, `DNS mode ${m.name} revert()`, () => m.revert(ctx));
      } catch (error) {
        throw report(`DNS mode ${m.name} revert()`, error);
      }
    },
  };
}
