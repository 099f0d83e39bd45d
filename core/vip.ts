/**
 * The VIP pool: one virtual IPv4 address per service and per addressed pod, from `--vip-base`
 * (default 198.18.0.0/15, RFC 2544 benchmarking space). The TUN takes base+1; VIPs start at
 * base+2. Allocations are persisted per cluster and context, so `hello.demo` keeps its VIP across
 * restarts; VIPs unused for `--stale-vip-timeout` are reclaimed unless a connection is open or
 * they are pinned (pre-allocated for `-n` namespaces or `--services`: a user may have written
 * the address down, so it stays while the service exists), and freed addresses are reused
 * oldest-first, never the one just freed.
 */
import type { InvokingUser } from "./invoking_user.ts";
import { logger } from "./log.ts";
import {
  ensureOwnedDir,
  type FileOwner,
  parentDir,
  readOwnedFileSync,
  replaceFileSync,
  type WithOwner,
} from "./safe_file.ts";
import { NoTelemetry, type TelemetrySink, type VipTarget } from "./telemetry.ts";

/** A parsed `--vip-base`. */
export interface VipNetwork {
  /** Network address as a number. */
  base: number;
  prefix: number;
}

/** Parses `--vip-base`: an address (= /16, compatible with the Rust k8stun) or a CIDR. */
export function parseVipBase(value: string | undefined): VipNetwork {
  if (value === undefined) return { base: ipv4ToNumber("198.18.0.0")!, prefix: 15 };
  const [address, prefixText] = value.trim().split("/");
  const n = ipv4ToNumber(address);
  if (n === undefined) throw new Error(`--vip-base "${value}" is not an IPv4 address or CIDR`);
  const prefix = prefixText === undefined ? 16 : Number(prefixText);
  if (!Number.isInteger(prefix) || prefix < 8 || prefix > 30) {
    throw new Error(`--vip-base "${value}": the prefix length must be 8 to 30`);
  }
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return { base: (n & mask) >>> 0, prefix };
}

/** Dotted IPv4 → number, or undefined. */
export function ipv4ToNumber(ip: string): number | undefined {
  const parts = ip.split(".");
  if (parts.length !== 4) return undefined;
  let n = 0;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255) return undefined;
    n = n * 256 + Number(p);
  }
  return n >>> 0;
}

/** Number → dotted IPv4. */
export function numberToIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

interface Entry {
  vip: string;
  target: VipTarget;
  allocatedAt: Date;
  lastUsed: number;
  /** Never reclaimed by the stale sweep (until unpinned). */
  pinned: boolean;
}

/** Every address of the range has a VIP's target; the message says what to do. */
export class VipRangeExhausted extends Error {
  /** Targets of an {@link VipPool.allocateAll} that got no VIP. */
  without = 0;

  constructor(readonly cidr: string, readonly capacity: number) {
    super(
      `the VIP range ${cidr} is exhausted (${capacity} VIPs): widen --vip-base (the default /15 ` +
        "holds 131,068), or pre-allocate fewer (--auto-discover=false, fewer --services)",
    );
    this.name = "VipRangeExhausted";
  }
}

/** Options for {@link VipPool}. */
export interface VipPoolOptions {
  network: VipNetwork;
  /** Where allocations persist (JSON); undefined = not persisted. */
  statePath?: string;
  /**
   * The directory below which the state file's missing directories are created for
   * `stateOwner` (the user's home); default: the file's own directory.
   */
  stateRoot?: string;
  /** Who owns the state file and its directories (default: the process). */
  stateOwner?: FileOwner;
  /** Switches file operations to the owner's identity (see core/safe_file.ts). */
  withOwner?: WithOwner;
  /** Where a problem with the state file is reported, once (default: the log). */
  warn?: (message: string) => void;
  /** Reclaim VIPs unused this long (ms); 0 = never. */
  staleMs: number;
  telemetry?: TelemetrySink;
  now?: () => number;
}

const targetKey = (t: VipTarget) => `${t.type}/${t.namespace}/${t.name}`;

/** Allocates and remembers VIPs. */
export class VipPool {
  readonly network: VipNetwork;
  readonly #byVip = new Map<string, Entry>();
  readonly #byTarget = new Map<string, Entry>();
  /** Addresses remembered from earlier runs, reserved for their targets. */
  readonly #remembered = new Map<string, string>();
  /** The same, by address (each belongs to one target), so reserving one is O(1), not O(n). */
  readonly #rememberedBy = new Map<string, string>();
  readonly #freed: number[] = [];
  #next: number;
  readonly #options: VipPoolOptions;
  readonly #telemetry: TelemetrySink;
  readonly #now: () => number;
  /** Set when the state file cannot be used safely: this run keeps its VIPs in memory only. */
  #stateRefused = false;

  constructor(options: VipPoolOptions) {
    this.network = options.network;
    this.#options = options;
    this.#telemetry = options.telemetry ?? NoTelemetry;
    this.#now = options.now ?? Date.now;
    this.#next = options.network.base + 2;
    if (options.statePath) this.#load(options.statePath);
  }

  /** The TUN's own address (base+1). */
  get tunAddress(): string {
    return numberToIpv4(this.network.base + 1);
  }

  /**
   * The pool's last usable address, never a VIP: k8stun's DNS answers there inside the TUN (for
   * resolvers that send a link's queries out of that link).
   */
  get dnsAddress(): string {
    return numberToIpv4(this.network.base + 2 ** (32 - this.network.prefix) - 2);
  }

  /** `198.18.0.0/15`. */
  get cidr(): string {
    return `${numberToIpv4(this.network.base)}/${this.network.prefix}`;
  }

  /** Whether `ip` is inside the pool's network. */
  contains(ip: string): boolean {
    const n = ipv4ToNumber(ip);
    if (n === undefined) return false;
    const mask = (0xffffffff << (32 - this.network.prefix)) >>> 0;
    return ((n & mask) >>> 0) === this.network.base;
  }

  /**
   * The VIP of a target, allocating one if needed. A `pinned` VIP is never reclaimed as stale
   * until {@link unpin} (its service was deleted).
   */
  allocate(target: VipTarget, options: { pinned?: boolean } = {}): string {
    const { vip, fresh } = this.#allocate(target, options);
    if (fresh) this.#persist();
    return vip;
  }

  /**
   * {@link allocate} for many targets (pre-allocation at start-up), writing the state file once:
   * a write per VIP would rewrite the whole file each time, O(n²) bytes for n services. When the
   * range runs out, the rest go without: the error returned counts them.
   */
  allocateAll(
    targets: Iterable<VipTarget>,
    options: { pinned?: boolean } = {},
  ): VipRangeExhausted | undefined {
    let fresh = false;
    let exhausted: VipRangeExhausted | undefined;
    for (const target of targets) {
      if (exhausted) {
        if (!this.#byTarget.has(targetKey(target))) exhausted.without++;
        continue;
      }
      try {
        fresh = this.#allocate(target, options).fresh || fresh;
      } catch (error) {
        if (!(error instanceof VipRangeExhausted)) throw error;
        exhausted = error;
        exhausted.without = 1;
      }
    }
    if (fresh) this.#persist();
    return exhausted;
  }

  #allocate(target: VipTarget, options: { pinned?: boolean }): { vip: string; fresh: boolean } {
    const key = targetKey(target);
    const existing = this.#byTarget.get(key);
    if (existing) {
      existing.lastUsed = this.#now();
      existing.pinned ||= options.pinned ?? false;
      return { vip: existing.vip, fresh: false };
    }
    const remembered = this.#remembered.get(key);
    const vip = remembered && !this.#byVip.has(remembered) ? remembered : this.#fresh();
    const entry: Entry = {
      vip,
      target,
      allocatedAt: new Date(this.#now()),
      lastUsed: this.#now(),
      pinned: options.pinned ?? false,
    };
    this.#byVip.set(vip, entry);
    this.#byTarget.set(key, entry);
    this.#remember(key, vip);
    this.#telemetry.emit({ type: "vip_allocated", vip, target, at: entry.allocatedAt });
    return { vip, fresh: true };
  }

  /** The target of a VIP (marks it used). */
  lookup(vip: string): VipTarget | undefined {
    const entry = this.#byVip.get(vip);
    if (entry) entry.lastUsed = this.#now();
    return entry?.target;
  }

  /** The VIP of a target, if allocated (does not allocate). */
  vipOf(target: VipTarget): string | undefined {
    return this.#byTarget.get(targetKey(target))?.vip;
  }

  /** Current allocations, by VIP. */
  entries(): { vip: string; target: VipTarget; allocatedAt: Date }[] {
    return [...this.#byVip.values()].map(({ vip, target, allocatedAt }) => ({
      vip,
      target,
      allocatedAt,
    }));
  }

  /** Lets a pinned VIP be reclaimed like any other once it has been unused for the timeout. */
  unpin(target: VipTarget): void {
    const entry = this.#byTarget.get(targetKey(target));
    if (entry) entry.pinned = false;
  }

  /**
   * How often {@link sweep} should run so a VIP is reclaimed close to its timeout: a fifth of
   * it, between 1 s and 60 s (undefined when VIPs are never reclaimed).
   */
  get sweepIntervalMs(): number | undefined {
    const staleMs = this.#options.staleMs;
    return staleMs <= 0 ? undefined : Math.min(60_000, Math.max(1_000, Math.round(staleMs / 5)));
  }

  /** Releases VIPs unused for the stale timeout, except pinned ones and those `inUse` says are busy. */
  sweep(inUse: (vip: string) => boolean = () => false): string[] {
    if (this.#options.staleMs <= 0) return [];
    const cutoff = this.#now() - this.#options.staleMs;
    const removed: string[] = [];
    for (const entry of [...this.#byVip.values()]) {
      if (entry.pinned || entry.lastUsed > cutoff || inUse(entry.vip)) continue;
      this.#byVip.delete(entry.vip);
      this.#byTarget.delete(targetKey(entry.target));
      this.#freed.push(ipv4ToNumber(entry.vip)!);
      removed.push(entry.vip);
      this.#telemetry.emit({ type: "vip_removed", vip: entry.vip, target: entry.target });
    }
    return removed;
  }

  #fresh(): string {
    const size = 2 ** (32 - this.network.prefix);
    const last = this.network.base + size - 3; // base+size-2 is the DNS address

    while (this.#next <= last) {
      const candidate = numberToIpv4(this.#next++);
      if (!this.#rememberedBy.has(candidate) && !this.#byVip.has(candidate)) return candidate;
    }
    // Oldest freed first (FIFO), so a just-released VIP is not handed to another target at once.
    while (this.#freed.length > 0) {
      const candidate = numberToIpv4(this.#freed.shift()!);
      if (!this.#byVip.has(candidate)) {
        const owner = this.#rememberedBy.get(candidate);
        if (owner !== undefined) this.#remembered.delete(owner);
        this.#rememberedBy.delete(candidate);
        return candidate;
      }
    }
    throw new VipRangeExhausted(this.cidr, Math.max(0, size - 4)); // not base, TUN, DNS, broadcast
  }

  #load(path: string): void {
    let bytes: Uint8Array | undefined;
    try {
      bytes = readOwnedFileSync(path, this.#ownerOptions());
    } catch (error) {
      this.#refuseState(error);
      return;
    }
    if (!bytes) return; // first run for this context
    try {
      const saved = JSON.parse(new TextDecoder().decode(bytes)) as Record<string, string>;
      for (const [key, vip] of Object.entries(saved)) {
        // An address listed twice (a hand-edited file) stays with its first target.
        if (typeof vip === "string" && this.contains(vip) && !this.#rememberedBy.has(vip)) {
          this.#remember(key, vip);
        }
      }
    } catch {
      // a damaged file: start fresh, the next allocation rewrites it
    }
  }

  /** Remembers `vip` as `key`'s address (dropping the address `key` had before). */
  #remember(key: string, vip: string): void {
    const previous = this.#remembered.get(key);
    if (previous !== undefined && previous !== vip) this.#rememberedBy.delete(previous);
    this.#remembered.set(key, vip);
    this.#rememberedBy.set(vip, key);
  }

  #persist(): void {
    const path = this.#options.statePath;
    if (!path || this.#stateRefused) return;
    const text = JSON.stringify(Object.fromEntries(this.#remembered), null, 1);
    try {
      const dir = parentDir(path);
      const root = this.#options.stateRoot ?? dir;
      if (!dir.startsWith(root)) throw new Error(`${path} is not below ${root}`);
      const below = dir.slice(root.length).split("/").filter(Boolean);
      ensureOwnedDir(root, below, this.#ownerOptions());
      replaceFileSync(path, new TextEncoder().encode(text), {
        mode: 0o600,
        ...this.#ownerOptions(),
      });
    } catch (error) {
      this.#refuseState(error);
    }
  }

  #ownerOptions() {
    return { owner: this.#options.stateOwner, withOwner: this.#options.withOwner };
  }

  /** Persistence is best effort: VIPs work for this run; say once why they will not persist. */
  #refuseState(error: unknown): void {
    this.#stateRefused = true;
    const warn = this.#options.warn ?? ((m: string) => logger("vip").warn(m));
    warn(
      `not using the VIP state file ${this.#options.statePath}: ${
        error instanceof Error ? error.message : error
      }. VIPs work but are not remembered across runs; make the file and its directory the user's own (chown), or remove them`,
    );
  }
}

/**
 * Where a context's VIPs persist, as {@link VipPoolOptions}: `$XDG_STATE_HOME/k8stun/` or
 * `~/.local/state/k8stun/vips-<hash>.json` of the invoking user, owned by them.
 */
export async function vipStateOptions(
  context: string,
  server: string,
  user: InvokingUser,
  withOwner?: WithOwner,
  env: (name: string) => string | undefined = Deno.env.get,
): Promise<Pick<VipPoolOptions, "statePath" | "stateRoot" | "stateOwner" | "withOwner">> {
  const stateHome = env("XDG_STATE_HOME");
  // The home (or the part of XDG_STATE_HOME that exists) is trusted as it is; what k8stun
  // creates below it belongs to the user, and links below it are refused.
  const stateRoot = stateHome ? existingAncestor(stateHome) : user.home;
  const dir = stateHome ? `${stateHome}/k8stun` : `${user.home}/.local/state/k8stun`;
  return {
    statePath: `${dir}/${await vipStateName(context, server)}`,
    stateRoot,
    stateOwner: { uid: user.uid, gid: user.gid },
    withOwner,
  };
}

/** The state file's name for a context: `vips-<first 8 bytes of SHA-256, hex>.json`. */
async function vipStateName(context: string, server: string): Promise<string> {
  const digest = await crypto.subtle.digest(
    "SHA-256",
    new TextEncoder().encode(`${context}\n${server}`),
  );
  const hex = [...new Uint8Array(digest)].slice(0, 8).map((b) => b.toString(16).padStart(2, "0"))
    .join("");
  return `vips-${hex}.json`;
}

/** `path` if it exists, else its nearest existing ancestor. */
function existingAncestor(path: string): string {
  for (let p = path;; p = parentDir(p)) {
    try {
      Deno.statSync(p);
      return p;
    } catch {
      if (p === "/" || !p.includes("/")) return p;
    }
  }
}
