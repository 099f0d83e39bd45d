/**
 * macOS per-domain resolvers (docs/platform.md §5, resolver(5)): one file per cluster domain in
 * `/etc/resolver/`, naming k8stun's DNS server; the system consults it for that domain only and
 * picks it up without a restart. Each file is journaled before it is written (it survives
 * crashes and reboots), so `k8stun cleanup` removes it. Written to the spec; this Linux machine
 * cannot run it, the unit tests check the files.
 */
import type { DnsModeContext } from "../../mod.ts";

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

/** Whether `name` can be a resolver file's name: a domain name, nothing that walks out of the directory. */
export function isResolverFileName(name: string): boolean {
  return name.length <= 253 &&
    /^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$/i.test(name);
}

/** Writes one resolver file per domain. */
export async function applyResolverFiles(ctx: DnsModeContext, dir = RESOLVER_DIR): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  for (const domain of ctx.domains) {
    if (!isResolverFileName(domain)) {
      ctx.log.warn("no resolver file for {domain}: not a domain name", { domain });
      continue;
    }
    const path = `${dir}/${domain}`;
    const bytes = new TextEncoder().encode(resolverFile(ctx.server));
    await ctx.journal.recordFile(path, bytes); // durable before the file changes
    await Deno.writeFile(path, bytes);
  }
  ctx.log.info("{dir}/ sends {domains} to k8stun's DNS {server}", {
    dir,
    domains: ctx.domains.join(", "),
    server: ctx.server.address,
  });
}
