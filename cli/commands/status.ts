/** `k8stun status`: the running instance's VIPs and connections, as a table or JSON. */
import type { Command } from "commander";
import { findInstance } from "../../core/api/instance_file.ts";
import type { VipInfoJson } from "../../core/api/state.ts";

interface StatusOptions {
  url?: string;
  token?: string;
  json?: boolean;
}

/** Registers `status`. */
export function registerStatus(program: Command): void {
  program.command("status")
    .description("show the running k8stun's VIPs and connections (needs its --http API)")
    .option("--url <url>", "API base URL (default: found from the running instance)")
    .option("--token <token>", "API bearer token (default: K8STUN_HTTP_TOKEN or the instance's)")
    .option("--json", "print the /vips JSON instead of a table")
    .action(async (options: StatusOptions) => {
      const instance = options.url ? undefined : await findInstance();
      const url = options.url ?? instance?.url;
      if (!url) {
        throw new Error(
          "no running k8stun with an HTTP API found — start it with --http PORT, or pass --url",
        );
      }
      const token = options.token ?? Deno.env.get("K8STUN_HTTP_TOKEN") ?? instance?.token;
      const response = await fetch(`${url.replace(/\/$/, "")}/vips`, {
        headers: token ? { authorization: `Bearer ${token}` } : {},
      }).catch((error) => {
        throw new Error(`cannot reach the k8stun API at ${url}: ${error.message}`);
      });
      if (!response.ok) {
        throw new Error(
          `the k8stun API at ${url} answered ${response.status}: ${(await response.text()).trim()}`,
        );
      }
      const body = await response.json() as { vips: VipInfoJson[] };
      console.log(options.json ? JSON.stringify(body, null, 2) : formatStatus(body.vips));
    });
}

/** Renders VIPs and their active connections as a plain-text table. */
export function formatStatus(vips: VipInfoJson[]): string {
  if (vips.length === 0) return "no VIPs allocated";
  const header = ["VIP", "TARGET", "PORTS", "ACTIVE", "TOTAL", "SENT", "RECEIVED"];
  const rows = vips.map((v) => [
    v.vip,
    `${v.target.type} ${v.target.namespace}/${v.target.name}`,
    v.ports.join(",") || "-",
    String(v.stats.active_connections),
    String(v.stats.total_connections),
    bytes(v.stats.bytes_sent),
    bytes(v.stats.bytes_received),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd();
  const out = [line(header), ...rows.map(line)];
  const connections = vips.flatMap((v) => v.connections.map((c) => ({ vip: v.vip, ...c })));
  if (connections.length > 0) {
    out.push("", "ACTIVE CONNECTIONS");
    for (const c of connections) {
      out.push(`  ${c.src_ip}:${c.src_port} → ${c.vip}:${c.dst_port}  since ${c.created_at}`);
    }
  }
  return out.join("\n");
}

function bytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}
