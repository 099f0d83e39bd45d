/**
 * The flags `k8stun run` shares with `demo` (compatible with the Rust k8stun, with the defects
 * docs/compatibility.md lists fixed), the groups `proxy` takes too, and their parsing into a
 * typed configuration (cli/option_table.ts). Every value
 * is checked here, so a bad flag fails before anything on the system changes.
 */
import { InvalidArgumentError, Option } from "commander";
import {
  converted,
  flag,
  type FlagValues,
  flagWithDefault,
  repeated,
  toggle,
} from "./option_table.ts";
import { parseSocksUpstream, type SocksUpstream } from "../plugins/socks_upstream/mod.ts";
import { DEFAULT_BUSY_POLL_US } from "../core/net/data_plane/data_plane.ts";
import { DEFAULT_MAX_CONNECTIONS } from "../core/net/data_plane/connection_limit.ts";
import { parseVipBase } from "../core/vip.ts";
import { publicVipRangeWarning } from "../core/vip_range.ts";

/** DNS modes, by their canonical names. */
export type DnsModeName = "tun_route" | "forward" | "disabled";

/** A service named with `--services`. */
export interface ServiceRef {
  name: string;
  namespace: string;
  port?: number;
}

/** Parses a boolean in any of the spellings users type (docs/compatibility.md §1). */
export function parseBool(value: string): boolean {
  const v = value.trim().toLowerCase();
  if (["true", "1", "yes", "on"].includes(v)) return true;
  if (["false", "0", "no", "off"].includes(v)) return false;
  throw new InvalidArgumentError(`expected true or false, got "${value}"`);
}

/** `tun_route`, `tun-route`, `tunroute` (any case), `forward`, `disabled` (docs/compatibility.md §1). */
export function parseDnsMode(value: string): DnsModeName {
  const v = value.trim().toLowerCase().replace(/[-_]/g, "");
  if (v === "tunroute") return "tun_route";
  if (v === "forward" || v === "disabled") return v;
  throw new InvalidArgumentError(
    `"${value}" is not a DNS mode (valid: tun_route, forward, disabled)`,
  );
}

/** An integer within bounds, for ports, MTU and timeouts. */
export function integerIn(min: number, max: number, what: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!/^\d+$/.test(value.trim()) || n < min || n > max) {
      throw new InvalidArgumentError(`${what} must be a whole number from ${min} to ${max}`);
    }
    return n;
  };
}

/** `HOST:PORT`, `:PORT` or `PORT` (host defaults to 127.0.0.1). */
export function parseListenAddress(
  value: string,
  defaultPort: number,
): { hostname: string; port: number } {
  const v = value.trim();
  if (v === "") return { hostname: "127.0.0.1", port: defaultPort };
  const ipv6 = /^\[([^\]]+)\]:(\d+)$/.exec(v);
  const [host, port] = ipv6
    ? [ipv6[1], ipv6[2]]
    : /^\d+$/.test(v)
    ? ["127.0.0.1", v]
    : [v.slice(0, v.lastIndexOf(":")) || "127.0.0.1", v.slice(v.lastIndexOf(":") + 1)];
  const n = Number(port);
  if (!/^\d+$/.test(port) || n > 65535) {
    throw new InvalidArgumentError(`"${value}" is not HOST:PORT`);
  }
  return { hostname: host, port: n };
}

/** `svc.ns[:port],…` for `--services` (docs/compatibility.md §1). */
export function parseServices(
  value: string,
  previous: ServiceRef[] = [],
): ServiceRef[] {
  const out = [...previous];
  for (const item of value.split(",").map((s) => s.trim()).filter(Boolean)) {
    const match = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?)\.([a-z0-9]([-a-z0-9]*[a-z0-9])?)(?::(\d+))?$/
      .exec(item);
    if (!match) throw new InvalidArgumentError(`"${item}" is not SERVICE.NAMESPACE[:PORT]`);
    const port = match[5] === undefined
      ? undefined
      : integerIn(1, 65535, "a service port")(match[5]);
    out.push({ name: match[1], namespace: match[3], port });
  }
  return out;
}

function splitList(value: string, previous: string[] = []): string[] {
  return [...previous, ...value.split(",").map((s) => s.trim()).filter(Boolean)];
}

/** `-n a,b`: namespace names are RFC 1123 labels, as Kubernetes requires. */
export function parseNamespaces(value: string, previous: string[] = []): string[] {
  const names = splitList(value, previous);
  const bad = names.find((n) => !/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(n));
  if (bad !== undefined) {
    throw new InvalidArgumentError(
      `"${bad}" is not a namespace name (lowercase letters, digits and '-', at most 63)`,
    );
  }
  return names;
}

/**
 * A listen address flag's text, checked while parsing (it is converted when the configuration is
 * read): commander then reports a bad one naming the flag, before anything starts.
 */
export function checkListenAddress(value: string): string {
  parseListenAddress(value, 0);
  return value;
}

/** `--vip-base`: checked while parsing, so a typo fails before anything starts. */
export function parseVipBaseFlag(value: string): string {
  try {
    parseVipBase(value);
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
  return value.trim();
}

/**
 * What in valid flags still deserves a word before start-up: a `--vip-base` in public address
 * space. (Namespaces and services that do not exist are reported once the cluster is listed.)
 */
export function runOptionWarnings(options: RunOptions): string[] {
  const warning = options.vipBase === undefined
    ? undefined
    : publicVipRangeWarning(parseVipBase(options.vipBase));
  return warning === undefined ? [] : [warning];
}

/** `-c` and `--kubeconfig`: which cluster, for every command that talks to one. */
export function kubeconfigFlags() {
  return {
    context: flag("-c, --context <name>", "kubeconfig context (default: the current context)"),
    kubeconfig: flag(
      "--kubeconfig <file>",
      "kubeconfig file (default: KUBECONFIG, then ~/.kube/config; under sudo, the invoking user's)",
    ),
  };
}

/** The plugin flags of `run`, `demo` and `proxy`. */
export function pluginFlags() {
  return {
    pluginDirs: converted(
      flag<string[]>(
        "--plugin-dir <dir>",
        "load plugins from this directory (repeatable; default ~/.config/k8stun/plugins)",
        { parse: repeated },
      ),
      (v) => v ?? [],
    ),
    pluginConfig: converted(
      flag<string[]>(
        "--plugin-config <name.key=value>",
        "configuration for a plugin (repeatable)",
        { parse: repeated },
      ),
      (v) => v ?? [],
    ),
    pluginIsolation: flagWithDefault(
      "--plugin-isolation <bool>",
      "run third-party resolver and dialer plugins in permission-limited Workers",
      true,
      { parse: parseBool },
    ),
    /** `--allow-unisolated NAME`: third-party plugins allowed to run in-process (DNS modes). */
    allowUnisolated: converted(
      flag<string[]>(
        "--allow-unisolated <name>",
        "let this third-party plugin run in-process with all permissions (DNS-mode plugins need it; repeatable)",
        { parse: repeated },
      ),
      (v) => v ?? [],
    ),
  };
}

/** `--cluster-domain`, normalised (no leading or trailing dots, lowercase). */
export function clusterDomainFlag() {
  return {
    clusterDomain: converted(
      flagWithDefault("--cluster-domain <domain>", "the cluster's DNS domain", "cluster.local"),
      (v) => v.replace(/^\.+|\.+$/g, "").toLowerCase(),
    ),
  };
}

/** The flags of `run` and `demo`, in `--help` order; `namespaces` is the command's default. */
export function runFlags(defaults: { namespaces: string[] }) {
  const namespaces = flag<string[]>(
    "-n, --namespaces <list>",
    `namespaces to pre-allocate VIPs for (comma list, repeatable; default ${
      defaults.namespaces.join(",")
    })`,
    { parse: parseNamespaces },
  );
  const autoDiscover = flagWithDefault<boolean>(
    "--auto-discover [bool]",
    "pre-allocate VIPs for discovered services (true/false)",
    true,
    { parse: parseBool },
  );
  const socks = flag<string | boolean>(
    "--socks [addr]",
    "also serve SOCKS5 (proxy mode) on ADDR (default 127.0.0.1:1080)",
    { parse: checkListenAddress },
  );
  return {
    namespaces: converted(namespaces, (v) => v ?? defaults.namespaces),
    /** Whether `-n` was given (explicit namespaces may shadow public TLDs in DNS). */
    namespacesExplicit: converted(namespaces, (v) => v !== undefined),
    vipBase: flag(
      "--vip-base <ip[/len]>",
      "virtual IP range: an address (= /16) or a CIDR (default 198.18.0.0/15)",
      { parse: parseVipBaseFlag },
    ),
    autoDiscover: {
      options: [
        ...autoDiscover.options,
        new Option("--no-auto-discover", "do not pre-allocate; names still get VIPs on first use"),
      ],
      value: (raw: Record<string, unknown>) => autoDiscover.value(raw) !== false,
    },
    mtu: flagWithDefault(
      "--mtu <bytes>",
      "MTU of the TUN device (576-65535; MSS = MTU - 40)",
      1500,
      {
        parse: integerIn(576, 65535, "--mtu"),
      },
    ),
    /**
     * Checksum and segmentation offload with the kernel (Linux; done without when the kernel
     * refuses it). Off: checksums in TypeScript and MTU-sized packets, as on macOS.
     */
    tunOffload: converted(
      flagWithDefault(
        "--tun-offload <mode>",
        "TUN checksum and segmentation offload (Linux): on (when the kernel supports it) or off " +
          "(checksums in k8stun, MTU-sized packets, as on macOS)",
        "on",
        { choices: ["on", "off"] },
      ),
      (v) => v !== "off",
    ),
    /** Microseconds the packet loop polls without sleeping after traffic (0 = never). */
    busyPollMicros: flagWithDefault(
      "--busy-poll <µs>",
      "after traffic, the packet loop polls this long before sleeping: lower latency for some " +
        "CPU while traffic flows, none when idle (0 = sleep at once)",
      DEFAULT_BUSY_POLL_US,
      { parse: integerIn(0, 100_000, "--busy-poll") },
    ),
    /** Seconds a successful dial lets new connections to its VIP and port connect at once. */
    earlyConnectSeconds: flagWithDefault(
      "--early-connect <seconds>",
      "a new connection to a VIP and port that accepted one within this many seconds is " +
        "connected at once while its dial runs; if that dial fails the app sees a reset instead " +
        "of a refusal (0 = always dial first)",
      30,
      { parse: integerIn(0, 3600, "--early-connect") },
    ),
    idleTimeoutSeconds: flagWithDefault(
      "--idle-timeout <seconds>",
      "close connections idle this long (0 = never)",
      300,
      { parse: integerIn(0, 31_536_000, "--idle-timeout") },
    ),
    maxConnections: flag<number>(
      "--max-connections <n>",
      "connections through the TUN at once; past it new ones are refused until some close " +
        `(default: ${DEFAULT_MAX_CONNECTIONS}, or fewer when \`ulimit -n\` is low: up to 2 ` +
        "descriptors each in 3/8 of it)",
      { parse: integerIn(1, 1_000_000, "--max-connections") },
    ),
    dnsMode: flagWithDefault<DnsModeName>(
      "--dns-mode <mode>",
      "how system DNS reaches k8stun: tun_route, forward or disabled",
      "tun_route",
      { parse: parseDnsMode },
    ),
    ...clusterDomainFlag(),
    staleVipTimeoutSeconds: flagWithDefault(
      "--stale-vip-timeout <seconds>",
      "reclaim VIPs unused this long (0 = never)",
      600,
      { parse: integerIn(0, 31_536_000, "--stale-vip-timeout") },
    ),
    /** How long the first list of the cluster may take before start-up fails. */
    syncTimeoutSeconds: flagWithDefault(
      "--sync-timeout <seconds>",
      "give up starting when the API server has not listed the cluster within this time",
      15,
      { parse: integerIn(1, 3600, "--sync-timeout") },
    ),
    services: converted(
      flag<ServiceRef[]>("--services <svc.ns[:port],...>", "also pre-allocate these services", {
        parse: parseServices,
      }),
      (v) => v ?? [],
    ),
    http: flagWithDefault(
      "--http <port>",
      "HTTP API and dashboard on 127.0.0.1:PORT (0 = off)",
      0,
      {
        parse: integerIn(0, 65535, "--http"),
      },
    ),
    httpHost: flag("--http-host <host>", "also serve the API on this address (requires a token)"),
    httpToken: flag("--http-token <token>", "require this bearer token for the API", {
      env: "K8STUN_HTTP_TOKEN",
    }),
    ...kubeconfigFlags(),
    ...pluginFlags(),
    /** Dial through this SOCKS5 proxy (`--socks-upstream`). */
    socksUpstream: flag<SocksUpstream>(
      "--socks-upstream <[user:pass@]host:port>",
      "send cluster traffic through this SOCKS5 proxy (a bastion, or another k8stun proxy)",
      { parse: parseSocksUpstream },
    ),
    /** SOCKS5 listener beside TUN mode (`--socks [ADDR]`). */
    socks: converted(
      socks,
      (v) =>
        v === undefined
          ? undefined
          : v === true
          ? { hostname: "127.0.0.1", port: 1080 }
          : parseListenAddress(String(v), 1080),
    ),
    /** The SOCKS5 listener may reach this machine's own services (`--proxy-allow-local`). */
    proxyAllowLocal: toggle(
      "--proxy-allow-local",
      "let --socks clients reach this machine's loopback and link-local services",
    ),
  };
}

/** Parsed flags of `run`/`demo`. */
export type RunOptions = FlagValues<ReturnType<typeof runFlags>> & {
  /**
   * The name the VIP state file is kept under (default: context and API server). The demo's
   * simulated cluster has a new address each run, so it passes a fixed one.
   */
  vipStateKey?: string;
};
