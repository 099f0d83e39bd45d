/**
 * DNS mode `forward`: points the system at k8stun's DNS server. On macOS, per-domain files in
 * /etc/resolver (macos_resolver.ts). Under systemd-resolved (its stub configured, TUN mode),
 * per-link split DNS sends only the cluster's domains to k8stun (resolved.ts). Otherwise
 * `/etc/resolv.conf` is rewritten (the intended bytes journaled first; written in place, so a
 * bind-mounted file works): search domains and options kept, the original nameservers
 * become k8stun's upstreams and stay listed after k8stun's own, for the day it dies without
 * restoring the file. Revert restores the original bytes unless someone changed the file
 * since.
 */
import type { DnsMode, DnsModeContext } from "../../mod.ts";
import type { FileJournal } from "../../core/journal.ts";
import { parseResolvConf } from "../../core/dns/upstream.ts";
import {
  applySplitDns,
  type ResolvectlRunner,
  resolvedActive,
  revertSplitDns,
  runResolvectl,
} from "./resolved.ts";
import {
  applyResolverFiles,
  isResolverFileName,
  removeOrphanedResolverFiles,
  RESOLVER_DIR,
} from "./macos_resolver.ts";

/** The file this mode rewrites. */
export const RESOLV_CONF = "/etc/resolv.conf";

/**
 * Whether `path` is a file this mode changes on `os`: a resolver file directly in
 * `/etc/resolver/` on macOS (where `/etc/resolv.conf` belongs to configd and is never written),
 * `/etc/resolv.conf` elsewhere. `k8stun cleanup` restores nothing else, whatever a journal names.
 */
export function isFileForwardChanges(
  path: string,
  os: typeof Deno.build.os = Deno.build.os,
): boolean {
  if (os !== "darwin") return path === RESOLV_CONF;
  const prefix = `${RESOLVER_DIR}/`;
  return path.startsWith(prefix) && isResolverFileName(path.slice(prefix.length));
}

/** Nameservers a resolver reads from resolv.conf (glibc's MAXNS, resolv.conf(5)). */
const MAX_NAMESERVERS = 3;
/** The first line of every resolv.conf k8stun writes: how k8stun, and you, know the file. */
const HEADER =
  "# written by k8stun (dns mode forward); restored when k8stun stops or by `k8stun cleanup`";
const FALLBACK_COMMENT = "# the original servers, for when k8stun does not answer";

/**
 * The resolv.conf k8stun writes: its server first, then the original nameservers (as many as
 * fit), with the original search/domain/options lines.
 *
 * The original servers are there for the day k8stun dies without restoring the file (SIGKILL,
 * a power cut): nothing answers on k8stun's address then, the kernel refuses the query at once,
 * and the resolver asks the next server, so names keep resolving until `k8stun cleanup`. While
 * k8stun runs, a resolver moves on to them only when k8stun fails to answer (a timeout, or
 * SERVFAIL when its own upstream failed): a cluster name always gets k8stun's final answer, a
 * missing one NXDOMAIN. `options rotate` is dropped: it would send cluster names to the others.
 */
export function forwardResolvConf(original: string, server: string): string {
  const lines = original.split("\n");
  const fallbacks = lines
    .map((l) => /^\s*nameserver\s+(\S+)/.exec(l)?.[1])
    .filter((address): address is string => address !== undefined && address !== server)
    .slice(0, MAX_NAMESERVERS - 1);
  const kept = lines
    .filter((l) => /^\s*(search|domain|options)\b/.test(l))
    .map((l) => /^\s*options\b/.test(l) ? l.replace(/\s+rotate\b/g, "") : l)
    .filter((l) => !/^\s*options\s*$/.test(l));
  return [
    HEADER,
    `nameserver ${server}`,
    ...(fallbacks.length > 0 ? [FALLBACK_COMMENT] : []),
    ...fallbacks.map((address) => `nameserver ${address}`),
    ...kept,
    "",
  ].join("\n");
}

/**
 * `text` without what {@link forwardResolvConf} added — its header, k8stun's nameserver and the
 * comment before the original ones — when `text` is exactly what k8stun writes for the rest;
 * undefined for any other file, one with lines added since included (left alone, as the journal
 * would leave it). For a file whose journal is gone: the runtime directory is a tmpfs, so a reboot
 * after a crash empties it, while /etc/resolv.conf stays. An `options rotate` k8stun left out
 * stays out.
 */
export function resolvConfWithoutK8stun(text: string): string | undefined {
  const lines = text.split("\n");
  const server = /^nameserver\s+(\S+)$/.exec(lines[1] ?? "")?.[1];
  if (lines[0] !== HEADER || server === undefined) return undefined;
  const rest = lines.slice(lines[2] === FALLBACK_COMMENT ? 3 : 2).join("\n");
  return forwardResolvConf(rest, server) === text ? rest : undefined;
}

/**
 * Takes k8stun's lines out of `path` (see {@link resolvConfWithoutK8stun}), in place as forward
 * writes it. Returns what it did, for the user.
 */
export async function repairOrphanedResolvConf(path = RESOLV_CONF): Promise<string | undefined> {
  const text = await Deno.readTextFile(path).catch(() => undefined);
  const repaired = text === undefined ? undefined : resolvConfWithoutK8stun(text);
  if (repaired === undefined) return undefined;
  try {
    await Deno.writeTextFile(path, repaired);
  } catch (error) {
    return `${path}: still has k8stun's lines (${
      (error as Error).message
    }); delete the k8stun comment and nameserver lines at its top`;
  }
  return `${path}: k8stun's lines removed (its run left no journal: the machine restarted since?)`;
}

/**
 * Undoes what forward mode wrote on this OS when its journal is gone (the runtime directory is
 * emptied at boot, /etc is not): k8stun's lines in resolv.conf, k8stun's files in /etc/resolver
 * on macOS, each only as k8stun wrote it. The caller knows that no k8stun runs. Returns what it
 * did, for the user.
 */
export async function repairOrphanedFiles(
  system: Partial<Pick<ForwardSystem, "os" | "path" | "resolverDir">> = {},
): Promise<string[]> {
  const { os, path, resolverDir } = { ...SYSTEM, ...system };
  if (os === "darwin") return await removeOrphanedResolverFiles(resolverDir);
  const done = await repairOrphanedResolvConf(path);
  return done ? [done] : [];
}

/** What tests replace: the OS, the files, how resolved is detected and driven. */
export interface ForwardSystem {
  os: typeof Deno.build.os;
  path: string;
  resolverDir: string;
  resolvedActive(configured: string[]): Promise<boolean>;
  resolvectl: ResolvectlRunner;
  /** How often a rewritten resolv.conf is looked for (ms). */
  watchEveryMs: number;
}

const SYSTEM: ForwardSystem = {
  os: Deno.build.os,
  path: RESOLV_CONF,
  resolverDir: RESOLVER_DIR,
  resolvedActive,
  resolvectl: runResolvectl,
  watchEveryMs: 3000,
};

/** Builds the mode. */
export function forwardMode(system: Partial<ForwardSystem> = {}): DnsMode {
  const { os, path, resolverDir, resolvectl, resolvedActive, watchEveryMs } = {
    ...SYSTEM,
    ...system,
  };
  let splitLink: string | undefined;
  let watching: ReturnType<typeof setInterval> | undefined;
  return {
    name: "forward",
    async apply(ctx: DnsModeContext) {
      if (os === "darwin") return await applyResolverFiles(ctx, resolverDir);
      if (
        ctx.tunServer && ctx.tunName && ctx.resolvers.stub &&
        await resolvedActive(ctx.resolvers.configured)
      ) {
        await applySplitDns(resolvectl, ctx.tunName, ctx.tunServer.address, ctx.domains);
        splitLink = ctx.tunName;
        ctx.log.info("systemd-resolved sends {domains} to k8stun's DNS {server} on {link}", {
          domains: ctx.domains.join(", "),
          server: ctx.tunServer.address,
          link: ctx.tunName,
        });
        return;
      }
      const original = await Deno.readTextFile(path).catch(() => "");
      const bytes = new TextEncoder().encode(forwardResolvConf(original, ctx.server.address));
      await ctx.journal.recordFile(path, bytes); // durable before the file changes
      await Deno.writeFile(path, bytes);
      ctx.log.info("{path} now points at k8stun's DNS {server}", {
        path,
        server: ctx.server.address,
      });
      watching = watchRewrites(ctx, path, watchEveryMs);
    },
    async revert(ctx: DnsModeContext) {
      clearInterval(watching);
      watching = undefined;
      if (splitLink) {
        await revertSplitDns(resolvectl, splitLink).catch((e) => ctx.log.info(String(e)));
        splitLink = undefined;
        return;
      }
      const messages = await (ctx.journal as FileJournal).undo?.() ?? [];
      for (const m of messages) ctx.log.info(m);
    },
  };
}

/**
 * NetworkManager or a DHCP client may write resolv.conf again while k8stun runs (another network,
 * a renewed lease), leaving k8stun's server out: cluster names then go unanswered. Rewriting it
 * back would fight them and lose their newer file at exit, so the user is told, once per change;
 * a restart writes it again over the new file. (k8stun's exit leaves a file it did not write
 * alone, journal.ts.)
 */
function watchRewrites(
  ctx: DnsModeContext,
  path: string,
  everyMs: number,
): ReturnType<typeof setInterval> {
  let lost = false;
  const timer = setInterval(() => {
    let first: string | undefined;
    try {
      first = parseResolvConf(Deno.readTextFileSync(path))[0];
    } catch {
      return; // being replaced: look again next time
    }
    const ours = first === ctx.server.address;
    if (ours === !lost) return;
    lost = !ours;
    if (lost) {
      ctx.log.warn(
        "{path} was written again by another program (NetworkManager, a DHCP client?) and no " +
          "longer sends DNS to k8stun {server}: cluster names are not answered; restart k8stun " +
          "to point it at k8stun again",
        { path, server: ctx.server.address },
      );
    } else ctx.log.info("{path} points at k8stun's DNS again", { path });
  }, everyMs);
  Deno.unrefTimer(timer);
  return timer;
}

/** DNS mode `disabled`: the system's DNS is left alone; VIPs work by address. */
export const disabledMode: DnsMode = {
  name: "disabled",
  apply: () => Promise.resolve(),
  revert: () => Promise.resolve(),
};
