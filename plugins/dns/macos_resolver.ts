/**
 * macOS per-domain resolvers (platform-ffi.md §7.5, resolver(5)): one file per cluster domain in
 * `/etc/resolver/`, naming k8stun's DNS server; the system consults it for that domain only and
 * picks it up without a restart. Each file is journaled before it is written (it survives
 * crashes and reboots), so `k8stun cleanup` removes it. Written to the spec; this Linux machine
 * cannot run it, the unit tests check the files.
 */
import type { DnsModeContext } from "../../mod.ts";
import type { FileJournal } from "../../core/journal.ts";

/** Where macOS looks for per-domain resolver files. */
export const RESOLVER_DIR = "/etc/resolver";

/** The file for one domain. */
export function resolverFile(server: { address: string; port: number }): string {
  return [
    "# written by k8stun (dns mode forward); removed when k8stun stops or by `k8stun cleanup`",
    `nameserver ${server.address}`,
    `port ${server.port}`,
    "",
  ].join("\n");
}

/** Writes one resolver file per domain. */
export async function applyResolverFiles(ctx: DnsModeContext, dir = RESOLVER_DIR): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  for (const domain of ctx.domains) {
    const path = `${dir}/${domain}`;
    await ctx.journal.recordFile(path);
    const bytes = new TextEncoder().encode(resolverFile(ctx.server));
    await Deno.writeFile(path, bytes);
    await (ctx.journal as FileJournal).noteWritten?.(path, bytes);
  }
  ctx.log.info("{dir}/ sends {domains} to k8stun's DNS {server}", {
    dir,
    domains: ctx.domains.join(", "),
    server: ctx.server.address,
  });
}
