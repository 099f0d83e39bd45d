/**
 * DNS mode `forward`: points the system at k8stun's DNS server by rewriting `/etc/resolv.conf`
 * (journaled first; written in place, so a bind-mounted file works). Search domains and options
 * are kept; the original nameservers become k8stun's upstreams. Revert restores the original
 * bytes unless someone changed the file since.
 */
import type { DnsMode, DnsModeContext } from "../../mod.ts";
import type { FileJournal } from "../../core/journal.ts";

/** The file this mode rewrites. */
export const RESOLV_CONF = "/etc/resolv.conf";

/** The resolv.conf k8stun writes: its server first, the original search/options lines kept. */
export function forwardResolvConf(original: string, server: string): string {
  const kept = original.split("\n").filter((l) => /^\s*(search|domain|options)\b/.test(l));
  return [
    "# written by k8stun (dns mode forward); restored when k8stun stops or by `k8stun cleanup`",
    `nameserver ${server}`,
    ...kept,
    "",
  ].join("\n");
}

/** Builds the mode; `path` is overridable for tests. */
export function forwardMode(path = RESOLV_CONF): DnsMode {
  return {
    name: "forward",
    async apply(ctx: DnsModeContext) {
      const original = await Deno.readTextFile(path).catch(() => "");
      await ctx.journal.recordFile(path);
      const text = forwardResolvConf(original, ctx.server.address);
      const bytes = new TextEncoder().encode(text);
      await Deno.writeFile(path, bytes);
      await (ctx.journal as FileJournal).noteWritten?.(path, bytes);
      ctx.log.info("{path} now points at k8stun's DNS {server}", {
        path,
        server: ctx.server.address,
      });
    },
    async revert(ctx: DnsModeContext) {
      const messages = await (ctx.journal as FileJournal).undo?.() ?? [];
      for (const m of messages) ctx.log.info(m);
    },
  };
}

/** DNS mode `disabled`: the system's DNS is left alone; VIPs work by address. */
export const disabledMode: DnsMode = {
  name: "disabled",
  apply: () => Promise.resolve(),
  revert: () => Promise.resolve(),
};
