/**
 * systemd-resolved per-link split DNS (docs/platform.md §5): the TUN link gets k8stun's DNS
 * address inside the TUN and routing-only domains (`~cluster.local`, `~demo`, …), and is never
 * the default route for other names. resolved sends a link's queries out of that link, so the
 * server must be an address routed into the TUN, not loopback. The settings belong to the link:
 * they vanish with the TUN, also after a crash, so nothing needs journaling.
 */

/** Runs resolvectl; throws with its message when it fails. */
export type ResolvectlRunner = (args: string[]) => Promise<void>;

/** Runs the real `resolvectl`. */
export const runResolvectl: ResolvectlRunner = async (args) => {
  const out = await new Deno.Command("resolvectl", { args, stdout: "null", stderr: "piped" })
    .output();
  if (!out.success) {
    throw new Error(
      `resolvectl ${args.join(" ")}: ${new TextDecoder().decode(out.stderr).trim()}`,
    );
  }
};

/** Whether systemd-resolved is the system resolver: its stub is configured and resolvectl runs. */
export async function resolvedActive(configured: string[]): Promise<boolean> {
  if (!configured.includes("127.0.0.53")) return false;
  try {
    const out = await new Deno.Command("resolvectl", { args: ["status"], stdout: "null" }).output();
    return out.success;
  } catch {
    return false;
  }
}

/** Points the link's DNS at `server` for `domains` only. */
export async function applySplitDns(
  run: ResolvectlRunner,
  link: string,
  server: string,
  domains: string[],
): Promise<void> {
  await run(["dns", link, server]);
  await run(["domain", link, ...domains.map((d) => `~${d}`)]);
  await run(["default-route", link, "false"]);
}

/** Drops the link's DNS settings (also happens by itself when the TUN goes away). */
export async function revertSplitDns(run: ResolvectlRunner, link: string): Promise<void> {
  await run(["revert", link]);
}
