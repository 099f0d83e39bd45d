/**
 * Reading the system's resolvers (docs/platform.md §5): `/etc/resolv.conf`, and behind a
 * systemd-resolved stub (127.0.0.53) the real upstreams in `/run/systemd/resolve/resolv.conf`
 * (docs/compatibility.md §3 D6: a stub is never a reason to refuse to start).
 */
import {
  parseResolvConf,
  parseResolvOptions,
  type UpstreamLimits,
} from "../../core/dns/upstream.ts";

/** The system's resolvers and whether the configured one is a local stub. */
export interface SystemResolvers {
  /** Servers from /etc/resolv.conf. */
  configured: string[];
  /** Servers to forward to (the stub's upstreams when a stub is configured). */
  upstreams: string[];
  stub: boolean;
  /** The system resolver's patience (`options timeout: attempts:`), which forwarding keeps. */
  patience: Pick<UpstreamLimits, "timeoutMs" | "attempts">;
}

/** Reads the resolvers. */
export async function systemResolvers(path = "/etc/resolv.conf"): Promise<SystemResolvers> {
  const text = await Deno.readTextFile(path).catch(() => "");
  const configured = parseResolvConf(text);
  const stub = configured.length > 0 &&
    configured.every((s) => s.startsWith("127.") || s === "::1");
  let upstreams = configured;
  if (stub) {
    const real = parseResolvConf(
      await Deno.readTextFile("/run/systemd/resolve/resolv.conf").catch(() => ""),
    ).filter((s) => !s.startsWith("127."));
    upstreams = real.length > 0 ? real : configured;
  }
  return { configured, upstreams, stub, patience: parseResolvOptions(text) };
}
