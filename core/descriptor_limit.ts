/**
 * The process's descriptor limit, and how much of it each thing clients can make k8stun open may
 * take: connections through the TUN, proxy, DNS-over-TCP and API clients.
 *
 * A process at its descriptor limit fails in ways no caller can contain: Deno 2.9 itself panics
 * when its main thread cannot open `/proc/self/maps` for a stack check, which ends k8stun without
 * undoing its DNS changes (seen under a connection flood with `ulimit -n 1024`,
 * tests/adversarial/descriptor_flood_test.ts). So each cap on what clients can open is fitted to
 * a share of the limit, leaving the rest for the runtime, the cluster's connections and the
 * other caps. Deno raises the soft limit to the hard one as it starts; that is the limit read.
 */

let cached: number | null | undefined;

/**
 * The soft RLIMIT_NOFILE as this process has it, or undefined when unknown (not Linux) or
 * unlimited. Read once, from /proc/self/limits.
 */
export function openFileLimit(): number | undefined {
  if (cached === undefined) cached = readLimit();
  return cached ?? undefined;
}

function readLimit(): number | null {
  if (Deno.build.os !== "linux") return null;
  try {
    const limits = Deno.readTextFileSync("/proc/self/limits");
    const soft = /^Max open files\s+(\d+|unlimited)\s/m.exec(limits)?.[1];
    return soft === undefined || soft === "unlimited" ? null : Number(soft);
  } catch {
    return null;
  }
}

/**
 * `wanted`, or fewer: as many as fit in `share` (0–1) of `limit` when each takes `descriptorsEach`
 * descriptors; at least 1.
 */
export function fitToDescriptors(
  wanted: number,
  descriptorsEach: number,
  share: number,
  limit: number | undefined = openFileLimit(),
): number {
  if (limit === undefined) return wanted;
  return Math.max(1, Math.min(wanted, Math.floor((limit * share) / descriptorsEach)));
}
