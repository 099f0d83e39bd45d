/**
 * Which interface the main routing table sends an IPv4 address out of, read from
 * `/proc/net/route` (longest prefix, then lowest metric), taken before k8stun adds its own routes.
 * Policy routing rules and other tables are not consulted.
 */

/** One row of /proc/net/route. */
interface RouteRow {
  device: string;
  dst: number;
  mask: number;
  metric: number;
}

/** Parses /proc/net/route text (addresses are hex in host order, little-endian here). */
export function parseProcRoutes(text: string): RouteRow[] {
  const swap = (hex: string) => {
    const n = parseInt(hex, 16);
    return (((n & 0xff) << 24) | ((n >>> 8 & 0xff) << 16) | ((n >>> 16 & 0xff) << 8) |
      (n >>> 24)) >>>
      0;
  };
  return text.split("\n").slice(1).map((line) => line.trim().split(/\s+/)).filter((f) =>
    f.length >= 8
  ).map((f) => ({ device: f[0], dst: swap(f[1]), mask: swap(f[7]), metric: Number(f[6]) }));
}

/** The device for `address` (a 32-bit number), or undefined when no route matches. */
export function outgoingInterface(address: number, rows: RouteRow[]): string | undefined {
  let best: RouteRow | undefined;
  for (const row of rows) {
    if (((address & row.mask) >>> 0) !== row.dst) continue;
    if (
      !best || row.mask > best.mask ||
      (row.mask === best.mask && row.metric < best.metric)
    ) best = row;
  }
  return best?.device;
}

/** Reads the system table and looks `address` up. */
export function systemOutgoingInterface(address: number): string | undefined {
  try {
    return outgoingInterface(address, parseProcRoutes(Deno.readTextFileSync("/proc/net/route")));
  } catch {
    return undefined;
  }
}
