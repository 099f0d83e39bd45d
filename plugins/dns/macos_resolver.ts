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

/** The first line of every resolver file k8stun writes: how k8stun, and you, know the file. */
const HEADER =
  "# written by k8stun (dns mode forward); removed when k8stun stops or by `k8stun cleanup`";

/** The file for one domain. */
export function resolverFile(server: { address: string; port: number }): string {
  return [
    HEADER,
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

/**
 * Removes the resolver files k8stun wrote whose journal is gone (`/var/run` is emptied at boot,
 * `/etc/resolver` is not): files exactly as {@link resolverFile} writes them (one edited since is
 * left alone, as the journal would leave it). The caller knows that no k8stun runs. Returns what
 * it did, for the user.
 */
export async function removeOrphanedResolverFiles(dir = RESOLVER_DIR): Promise<string[]> {
  const messages: string[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(dir)];
  } catch {
    return messages; // no directory: nothing of k8stun's there
  }
  for (const entry of entries) {
    if (!entry.isFile || !isResolverFileName(entry.name)) continue;
    const path = `${dir}/${entry.name}`;
    const text = await Deno.readTextFile(path).catch(() => "");
    const [, nameserver, port] = text.split("\n");
    const address = /^nameserver (\S+)$/.exec(nameserver ?? "")?.[1];
    const number = Number(/^port (\d+)$/.exec(port ?? "")?.[1]);
    if (!address || text !== resolverFile({ address, port: number })) continue;
    try {
      await Deno.remove(path);
      messages.push(`${path}: removed (k8stun's, and its run left no journal)`);
    } catch (error) {
      messages.push(`${path}: k8stun's, but cannot be removed (${(error as Error).message})`);
    }
  }
  return messages;
}
