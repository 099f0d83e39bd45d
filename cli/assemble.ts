/**
 * The session assembly every long-running command shares (`run`, `demo`, `proxy`): the cluster
 * view over the kubeconfig, the name scope, and the plugins (built-ins first, then the plugin
 * directories) with the roles their parts play. TUN mode (cli/tunnel.ts) and proxy mode
 * (cli/commands/proxy.ts) then attach their own front to what this returns: the one place the
 * pieces are built, as wireguard-go's `main.go` builds its device (docs/architecture.md).
 */
import type { Dialer, DnsMode, Resolver } from "../mod.ts";
import type { ClusterStore } from "../core/cluster/store.ts";
import { type ClusterSync, startClusterSync } from "../core/cluster/sync.ts";
import type { LoadedKubeConfig } from "../core/kubeconfig.ts";
import { logger } from "../core/log.ts";
import type { NameScope } from "../core/names.ts";
import { DialerChain } from "../core/plugins/chain.ts";
import { collectParts, defaultPluginDir, loadPlugins } from "../core/plugins/loader.ts";
import type { TelemetrySink } from "../core/telemetry.ts";
import { builtins } from "../plugins/builtin.ts";
import type { SocksUpstream } from "../plugins/socks_upstream/mod.ts";
import { parsePluginConfig, reportPluginLoad } from "./plugin_options.ts";
import { setConnectionNoDelay } from "../ffi/linux/socket_nodelay.ts";

const log = logger("run");

/** What the cluster side of a session is built from. */
export interface ClusterOptions {
  kube: LoadedKubeConfig;
  /** Namespaces to watch when listing all is forbidden. */
  namespaces: string[];
  /** Namespaces the user named (`-n`) that may shadow public TLDs in names. */
  explicitNamespaces: string[];
  clusterDomain: string;
  /** Where a bare `svc` resolves (proxy mode); absent: bare names are not cluster names. */
  defaultNamespace?: string;
  /** How long the first list may take before start-up fails (default: the sync's). */
  syncTimeoutSeconds?: number;
  telemetry?: TelemetrySink;
  /** Fires on a stop signal during start-up: waiting stops, and what was started is closed. */
  abort?: AbortSignal;
}

/** A listed cluster and the names in it. */
export interface SessionCluster {
  /** The list/watch loop that keeps `store` current. */
  sync: ClusterSync;
  store: ClusterStore;
  scope: NameScope;
}

/**
 * Starts listing and watching the cluster and waits for the first complete list (the API server
 * may be slow or unreachable). On failure or abort the sync is closed before the error propagates.
 */
export async function syncCluster(options: ClusterOptions): Promise<SessionCluster> {
  const listing = performance.now();
  const sync = await unlessAborted(
    startClusterSync({
      access: options.kube.access,
      noDelay: Deno.build.os === "linux" ? setConnectionNoDelay : undefined,
      namespaces: options.namespaces,
      telemetry: options.telemetry,
      initialListTimeoutMs: options.syncTimeoutSeconds === undefined
        ? undefined
        : options.syncTimeoutSeconds * 1000,
    }),
    options.abort,
    (late) => late.close(),
  );
  try {
    await unlessAborted(sync.synced, options.abort);
  } catch (error) {
    sync.close();
    throw error;
  }
  const store = sync.store;
  const counts = store.counts();
  log.debug(
    "start-up: initial lists complete and indexed in {ms} ms ({objects} objects: {detail})",
    {
      ms: Math.round(performance.now() - listing),
      objects: Object.values(counts).reduce((a, b) => a + b, 0),
      detail: JSON.stringify(counts),
    },
  );
  const scope: NameScope = {
    clusterDomain: options.clusterDomain,
    isNamespace: (ns) => store.namespaces().includes(ns),
    explicitNamespaces: new Set(options.explicitNamespaces),
    ...(options.defaultNamespace === undefined
      ? {}
      : { defaultNamespace: options.defaultNamespace }),
  };
  return { sync, store, scope };
}

/** The plugin flags, as `run`, `demo` and `proxy` take them. */
export interface PluginOptions {
  pluginDirs: string[];
  pluginConfig: string[];
  pluginIsolation: boolean;
  allowUnisolated: string[];
  socksUpstream?: SocksUpstream;
}

/** The loaded plugins' parts, by the role each plays. */
export interface SessionPlugins {
  /** Every resolver in effective order, the cluster resolver included (the TUN router's). */
  resolvers: Resolver[];
  /**
   * The resolvers without the cluster resolver: k8stun's DNS answers cluster names itself, and a
   * proxy front adds a cluster resolver with its own default namespace.
   */
  pluginResolvers: Resolver[];
  dialers: Dialer[];
  dnsModes: DnsMode[];
  /** Closes every plugin. */
  close(): void;
}

/** Loads the built-ins and the plugin directories over `cluster`; failures are reported, not thrown. */
export async function loadSessionPlugins(
  cluster: SessionCluster,
  kube: LoadedKubeConfig,
  options: PluginOptions & { telemetry?: TelemetrySink },
): Promise<SessionPlugins> {
  const builtin = builtins({
    view: cluster.store,
    scope: cluster.scope,
    access: kube.access,
    telemetry: options.telemetry,
    socksUpstream: options.socksUpstream,
  });
  const pluginDirs = options.pluginDirs.length > 0 ? options.pluginDirs : [defaultPluginDir()];
  const { plugins, failures, warnings } = await loadPlugins(builtin.plugins, pluginDirs, {
    cluster: cluster.store,
    dialers: new DialerChain(),
    config: parsePluginConfig(options.pluginConfig),
    isolate: options.pluginIsolation,
    allowUnisolated: options.allowUnisolated,
  });
  reportPluginLoad({ warnings, failures });
  const parts = collectParts(plugins);
  return {
    resolvers: parts.resolvers,
    pluginResolvers: parts.resolvers.filter((r) => r !== builtin.clusterResolver),
    dialers: parts.dialers,
    dnsModes: parts.dnsModes,
    close: () => plugins.forEach((p) => p.close?.()),
  };
}

/**
 * `promise`, or a rejection with the abort reason as soon as `abort` fires. What the abandoned
 * promise still produces is handed to `dispose` (or its failure ignored): nothing leaks.
 */
export function unlessAborted<T>(
  promise: Promise<T>,
  abort?: AbortSignal,
  dispose?: (late: T) => void,
): Promise<T> {
  if (!abort) return promise;
  const abandon = () => promise.then((late) => dispose?.(late), () => {});
  if (abort.aborted) {
    abandon();
    return Promise.reject(abort.reason);
  }
  return Promise.race([
    promise,
    new Promise<never>((_, reject) =>
      abort.addEventListener("abort", () => {
        abandon();
        reject(abort.reason);
      }, { once: true })
    ),
  ]);
}
