/**
 * k8stun plugin API.
 *
 * This module is a plugin author's whole world: the types a resolver, dialer or DNS-mode plugin
 * implements, the context it receives, and the API version it declares. Plugins import it for
 * types only (`import type { ... } from "k8stun/mod.ts"`) so that nothing needs resolving at run
 * time; the loader hands the live API to `setup(ctx)`.
 *
 * @example A resolver plugin mapping `*.internal` to services
 * ```ts
 * import type { PluginModule } from "./mod.ts";
 * export const plugin: PluginModule = {
 *   name: "internal-names",
 *   version: "1.0.0",
 *   apiVersion: 1,
 *   kinds: ["resolver"],
 *   setup(ctx) {
 *     return {
 *       resolvers: [{
 *         name: "internal-names",
 *         resolveName(name) {
 *           const m = /^([a-z0-9-]+)\.internal$/.exec(name);
 *           return m ? { kind: "service", namespace: "default", name: m[1] } : null;
 *         },
 *       }],
 *     };
 *   },
 * };
 * ```
 * @module
 */

/** Version of this plugin API. A plugin declaring another major version is refused at load. */
export const API_VERSION = 1;

/** What a flow or a name resolves to. */
export type Target = ServiceTarget | PodTarget | HostTarget;

/** A Kubernetes Service; `port` is the service port (not the target port). */
export interface ServiceTarget {
  kind: "service";
  namespace: string;
  name: string;
  port?: number;
}

/** A Kubernetes Pod; `port` is the container port. */
export interface PodTarget {
  kind: "pod";
  namespace: string;
  name: string;
  port?: number;
}

/** A plain host and port, dialed as it is (e.g. by the direct or SOCKS5-upstream dialer). */
export interface HostTarget {
  kind: "host";
  host: string;
  port?: number;
}

/** Which front produced a flow. */
export type FlowFront = "tun" | "socks" | "http";

/** A request to open a TCP flow, as an application asked for it. */
export interface FlowRequest {
  /** Destination IPv4 address (TUN mode: the VIP; proxy mode: an address the client gave). */
  address?: string;
  /** Destination name, when the client gave a name (proxy mode, `socks5h`). */
  name?: string;
  port: number;
  protocol: "tcp";
  front: FlowFront;
  /** Source address and port of the application's socket, for logs and the API. */
  source?: { address: string; port: number };
}

/**
 * A concrete endpoint chosen for a target: which pod and which container port, or which host.
 * The router expands a service target into a list of candidates (ready endpoints, spread), and a
 * dialer tries them in order; a refusal moves on to the next candidate.
 */
export type DialTarget =
  | { kind: "pod"; namespace: string; name: string; port: number; ip?: string }
  | { kind: "host"; host: string; port: number };

/** A bidirectional byte stream, as a dialer returns it. Closing `writable` half-closes. */
export interface Duplex {
  readable: ReadableStream<Uint8Array>;
  writable: WritableStream<Uint8Array>;
  /** Abort both directions (the app sees RST). Idempotent. */
  abort(reason?: unknown): void;
  /**
   * Only for a dial made with `early` (see {@link DialOptions}): settles when the far end has
   * taken the connection (resolves) or refused it (rejects with `DialError("refused")`, and the
   * readable errors too). Absent means the connection was confirmed before `dial` returned.
   */
  accepted?: Promise<void>;
  /**
   * True when the writable is done with a chunk once its `write()` settles (it sent or copied
   * it), so the writer may reuse the chunk's memory: k8stun's TUN relay then writes from
   * recycled buffers instead of allocating one per write. Leave it unset if you keep chunks.
   */
  writeReleasesChunk?: boolean;
}

/** A TCP connection described for k8stun to open ({@link Dialer.socket}). */
export interface SocketDial {
  /** IPv4 address, dotted. */
  address: string;
  port: number;
  /**
   * A SOCKS5 CONNECT (RFC 1928, no authentication) to send once connected: the connection
   * carries the app's bytes only after the proxy's success reply; a failure reply fails the dial
   * with the reason its code gives.
   */
  socks5Connect?: { host: string; port: number };
}

/** Turns names and addresses into targets. Return `null` to pass to the next resolver. */
export interface Resolver {
  name: string;
  /** Resolve a DNS-style name (`svc.ns`, `pod.svc.ns.svc.cluster.local`, custom suffixes). */
  resolveName?(name: string): Target | null | Promise<Target | null>;
  /** Resolve an IPv4 address that is not a VIP (ClusterIP, pod IP, custom ranges). */
  resolveAddress?(address: string): Target | null | Promise<Target | null>;
}

/** Options passed to a dial. */
export interface DialOptions {
  /** Aborted when the app gives up or k8stun shuts down; a dialer must stop promptly. */
  signal: AbortSignal;
  /** The flow that caused the dial. */
  flow: FlowRequest;
  /**
   * The caller can take the stream before the far end confirms it: a dialer whose transport
   * reports refusals late (a port-forward learns of them on an error stream after the stream
   * exists) may return at once and settle `Duplex.accepted` later. The router then keeps the
   * first bytes written and replays them on the next candidate if that connection is refused, so
   * a new connection costs no round trip. Dialers may ignore it.
   */
  early?: boolean;
}

/** Opens byte streams to dial targets. */
export interface Dialer {
  name: string;
  /**
   * Whether this dialer handles the target; the first dialer that does is used. May answer
   * asynchronously (isolated plugins answer from their Worker).
   */
  accepts(target: DialTarget): boolean | Promise<boolean>;
  /** Opens the stream. Rejects with {@link DialError} when the remote refuses. */
  dial(target: DialTarget, options: DialOptions): Promise<Duplex>;
  /**
   * For a dialer whose connection is one plain TCP socket: that socket, described instead of
   * opened, so the TUN path can open and relay it inside its packet loop — no per-connection
   * streams, no thread hand-off per packet (docs/architecture.md, "Dialed from the packet loop").
   * Return undefined for targets it must `dial` itself; the proxy fronts always `dial`.
   */
  socket?(target: DialTarget): SocketDial | undefined;
  /** Releases sessions and sockets at shutdown. */
  close?(): Promise<void> | void;
}

/** Why a dial failed; decides RST vs ECONNREFUSED-like outcomes and the SOCKS reply code. */
export type DialFailure = "refused" | "unreachable" | "timeout" | "forbidden" | "error";

/** A dial failure with a reason a front can map to its protocol's error. */
export class DialError extends Error {
  /**
   * @param reason classification used by the fronts (SOCKS reply codes, RST) and metrics
   * @param message what happened, for the log line
   */
  constructor(readonly reason: DialFailure, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "DialError";
  }
}

/** What a DNS mode needs to point the system at k8stun's DNS server. */
export interface DnsModeContext {
  /** Address and port of k8stun's DNS server as the system should reach it. */
  server: { address: string; port: number };
  /**
   * TUN mode: an address inside the TUN where k8stun's DNS also answers (UDP and TCP port 53),
   * for resolvers that send a link's DNS traffic out of that link (systemd-resolved per-link DNS).
   */
  tunServer?: { address: string; port: number };
  /** The system's resolvers as found at start, before any DNS mode changed anything. */
  resolvers: { configured: string[]; upstreams: string[]; stub: boolean };
  /**
   * TUN mode: sends DNS (UDP and TCP port 53) to these IPv4 addresses into the TUN, where k8stun's
   * DNS answers; the rest of their traffic keeps its path. Rejects, changing nothing, where the
   * system can only route an address's whole traffic (macOS, Linux before 4.17): a resolver is
   * often a router or a domain controller whose other services must stay reachable.
   */
  routeToTun?(addresses: string[]): Promise<void>;
  /** Sends upstream queries for `server` out through `device`, so they do not loop into the TUN. */
  bindUpstream?(server: string, device: string): void;
  /**
   * Undoes {@link bindUpstream}: queries for `server` follow the routing table again (a mode that
   * bound them before {@link routeToTun} failed).
   */
  unbindUpstream?(server: string): void;
  /**
   * Names that are not the cluster's go to `servers` from now on, in this order: the system's
   * resolvers changed while k8stun ran (another network, a VPN's DNS).
   */
  forwardTo?(servers: string[]): void;
  /** Cluster domains to route (e.g. `cluster.local`, plus namespace suffixes). */
  domains: string[];
  /** The TUN interface name, for per-link DNS. */
  tunName?: string;
  /** Journal: every system change is recorded here before it is made, for crash cleanup. */
  journal: Journal;
  log: PluginLogger;
}

/** Applies and reverts a way of steering the system's DNS queries to k8stun. */
export interface DnsMode {
  name: string;
  /**
   * Connects the system's DNS to k8stun. A mode that had to do something else (e.g. tun_route
   * falling back to forward) says what it did and why, so the banner, `/healthz` and `status`
   * show the truth.
   */
  apply(ctx: DnsModeContext): Promise<void | AppliedDnsMode>;
  revert(ctx: DnsModeContext): Promise<void>;
}

/** What a DNS mode actually did, when it differs from its name. */
export interface AppliedDnsMode {
  /** The mode in effect (e.g. "forward"). */
  mode: string;
  /** Why, in a few words a user can act on. */
  reason?: string;
}

/** A record of system changes, so a crashed run can be undone by `k8stun cleanup`. */
export interface Journal {
  /**
   * Records that `path` is about to be replaced with `contents`; stores its current bytes and,
   * durably before it returns, what will be written (so a crash right after the write is undone).
   */
  recordFile(path: string, contents?: Uint8Array): Promise<void>;
  /** Records an arbitrary undo step handled by the named DNS mode's `revert`. */
  recordStep(mode: string, step: Record<string, unknown>): Promise<void>;
}

/** Structured logger handed to plugins; messages carry the plugin's name. */
export interface PluginLogger {
  debug(message: string, properties?: Record<string, unknown>): void;
  info(message: string, properties?: Record<string, unknown>): void;
  warn(message: string, properties?: Record<string, unknown>): void;
  error(message: string, properties?: Record<string, unknown>): void;
}

/** Read-only view of the cluster that plugins may query. */
export interface ClusterReader {
  /** Namespaces currently known. */
  namespaces(): string[];
  /** Whether a service exists. */
  hasService(namespace: string, name: string): boolean;
  /** Whether a pod exists. */
  hasPod(namespace: string, name: string): boolean;
}

/** What `setup` receives. */
export interface PluginContext {
  log: PluginLogger;
  cluster: ClusterReader;
  /** The plugin's own configuration (from `--plugin-config NAME.key=value` or a config file). */
  config: Record<string, string>;
  apiVersion: number;
  /**
   * The {@link DialError} class, handed over so plugins can throw classified failures while
   * importing this module for types only (a compiled k8stun cannot resolve imports at run time).
   */
  DialError: typeof DialError;
  /**
   * Dials with the dialers that come after this plugin in the effective order — how a wrapper
   * dialer (logging, metrics) passes a connection on. Only the target of a dial this plugin is
   * handling can be passed on (call it from `dial()` with the target `dial()` received); any
   * other target is refused with `DialError("forbidden")`, so a plugin cannot use the next
   * dialers' credentials to reach endpoints of its choosing. Rejects with `DialError` when no
   * later dialer accepts the target.
   */
  dialNext(target: DialTarget, options: DialOptions): Promise<Duplex>;
}

/** What `setup` returns: the parts this plugin contributes. */
export interface PluginParts {
  resolvers?: Resolver[];
  dialers?: Dialer[];
  dnsModes?: DnsMode[];
}

/** Kinds of contribution a plugin declares. */
export type PluginKind = "resolver" | "dialer" | "dns-mode";

/** The export a plugin module provides, named `plugin`. */
export interface PluginModule {
  name: string;
  version: string;
  apiVersion: number;
  kinds: PluginKind[];
  /** Lower runs first; built-ins use 100 (resolvers) and 100 (dialers). Default 50. */
  priority?: number;
  /** Deno permissions the plugin needs when run isolated in a Worker. */
  permissions?: { net?: string[] | boolean; read?: string[] | boolean; env?: string[] | boolean };
  setup(ctx: PluginContext): PluginParts | Promise<PluginParts>;
}
