/**
 * `k8stun status`: the running instances' VIPs and connections, as a table or JSON. With one
 * instance running (or one picked by `--pid` or `--url`), its table; with several, each one's
 * under a line naming it.
 */
import type { Command } from "commander";
import { findInstances, type InstanceInfo } from "../../core/api/instance_file.ts";
import type { VipInfoJson } from "../../core/api/state.ts";
import { integerIn } from "../run_options.ts";

interface StatusOptions {
  url?: string;
  token?: string;
  pid?: number;
  json?: boolean;
}

/** Registers `status`. */
export function registerStatus(program: Command): void {
  program.command("status")
    .description("show the running k8stuns' VIPs and connections (needs their --http API)")
    .option("--url <url>", "API base URL (default: found from the running instances)")
    .option("--pid <pid>", "only the instance with this process id", integerIn(1, 2 ** 31, "--pid"))
    .option("--token <token>", "API bearer token (default: K8STUN_HTTP_TOKEN or the instance's)")
    .option("--json", "print the /vips JSON instead of a table (one instance)")
    .action(async (options: StatusOptions) => {
      const instances = options.url ? [] : await findInstances();
      const picked = options.url
        ? [{ url: options.url } as Partial<InstanceInfo>]
        : pickInstances(instances, options.pid);
      if (options.json && picked.length > 1) {
        throw new Error(
          `${picked.length} k8stuns are running (pids ${
            picked.map((i) => i.pid).join(", ")
          }); pick one with --pid`,
        );
      }
      const token = (instance: Partial<InstanceInfo>) =>
        options.token ?? Deno.env.get("K8STUN_HTTP_TOKEN") ?? instance.token;
      if (picked.length === 1) {
        const body = await fetchVips(picked[0].url!, token(picked[0]));
        console.log(options.json ? JSON.stringify(body, null, 2) : formatStatus(body.vips));
        return;
      }
      let failed = 0;
      const sections: string[] = [];
      for (const instance of picked) {
        const vips = await fetchVips(instance.url!, token(instance)).then(
          (body) => formatStatus(body.vips),
          (error) => {
            failed++;
            return (error as Error).message;
          },
        );
        sections.push(`${describeInstance(instance as InstanceInfo)}\n${vips}`);
      }
      console.log(sections.join("\n\n"));
      if (failed > 0) Deno.exitCode = 1;
    });
}

/** The instances `--pid` selects (all without it); throws when there is none. */
function pickInstances(instances: InstanceInfo[], pid?: number): InstanceInfo[] {
  if (pid === undefined) {
    if (instances.length > 0) return instances;
    throw new Error(
      "no running k8stun with an HTTP API found — start it with --http PORT, or pass --url",
    );
  }
  const picked = instances.filter((i) => i.pid === pid);
  if (picked.length > 0) return picked;
  const running = instances.map((i) => i.pid).join(", ");
  throw new Error(
    `no running k8stun with pid ${pid} and an HTTP API` +
      (running ? ` (running: pid ${running})` : " — start it with --http PORT"),
  );
}

/** One line naming an instance, above its table when several run. */
export function describeInstance(info: InstanceInfo): string {
  const details = [
    info.context && `context ${info.context}`,
    info.tun,
    info.vipRange && `VIPs ${info.vipRange}`,
    `API ${info.url}`,
    `since ${info.startedAt}`,
  ].filter(Boolean);
  return `k8stun pid ${info.pid}: ${details.join(", ")}`;
}

async function fetchVips(url: string, token?: string): Promise<{ vips: VipInfoJson[] }> {
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
  return await response.json() as { vips: VipInfoJson[] };
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
