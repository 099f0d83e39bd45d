/**
 * The built-in plugins, registered through the same API as third-party ones (mod.ts): the
 * Kubernetes resolver, the port-forward and direct dialers, and the DNS modes.
 */
import type { ApiAccess } from "../core/k8s/api_access.ts";
import type { PluginModule, Resolver } from "../mod.ts";
import { ClusterStore } from "../core/cluster/store.ts";
import type { ClusterView } from "../core/cluster/types.ts";
import type { NameScope } from "../core/names.ts";
import type { TelemetrySink } from "../core/telemetry.ts";
import { directPlugin } from "./direct/mod.ts";
import { dnsModesPlugin } from "./dns/mod.ts";
import { createKubernetesResolver, kubernetesResolverPlugin } from "./kubernetes/mod.ts";
import { portForwardPlugin } from "./portforward/mod.ts";
import { type SocksUpstream, socksUpstreamPlugin } from "./socks_upstream/mod.ts";

/** What the built-ins are built over. */
export interface BuiltinRuntime {
  view: ClusterView;
  scope: NameScope;
  /** The kubeconfig's API server and credentials (absent: the port-forward dialer cannot dial). */
  access?: ApiAccess;
  telemetry?: TelemetrySink;
  /** `--socks-upstream`: dial through this SOCKS5 proxy instead of port-forwarding. */
  socksUpstream?: SocksUpstream;
}

/** A built-in and whether this configuration uses it. */
export interface BuiltinEntry {
  plugin: PluginModule;
  /** Why the plugin is not in use, naming the flag that turns it on; absent when it is. */
  inactiveBecause?: string;
}

/**
 * The built-ins in use, and the one resolver among them with a role of its own: the cluster
 * resolver. k8stun's DNS server answers cluster names itself, and each proxy front builds its own
 * with the front's default namespace, so both take the plugins' resolvers without it.
 */
export interface Builtins {
  plugins: PluginModule[];
  /** The Kubernetes resolver the built-in `kubernetes` plugin provides (this very object). */
  clusterResolver: Resolver;
}

/** The built-in plugins in use; without a runtime, over an empty cluster. */
export function builtinPlugins(runtime?: BuiltinRuntime): PluginModule[] {
  return builtins(runtime).plugins;
}

/** The built-in plugins in use and their cluster resolver. */
export function builtins(runtime?: BuiltinRuntime): Builtins {
  const entries = allBuiltins(runtime);
  return {
    plugins: entries.filter((b) => b.inactiveBecause === undefined).map((b) => b.plugin),
    clusterResolver: entries.clusterResolver,
  };
}

/** Every built-in plugin, those this configuration leaves off included (for `plugins list`). */
export function allBuiltins(
  runtime?: BuiltinRuntime,
): BuiltinEntry[] & { clusterResolver: Resolver } {
  const r = runtime ?? {
    view: new ClusterStore(),
    scope: {
      clusterDomain: "cluster.local",
      isNamespace: () => false,
      explicitNamespaces: new Set<string>(),
    },
  };
  const socks = runtime?.socksUpstream;
  const clusterResolver = createKubernetesResolver(r.view, r.scope);
  const kubernetes = kubernetesResolverPlugin(r.view, r.scope);
  const entries: BuiltinEntry[] = [
    {
      // Without --socks-upstream the plugin is listed with a placeholder proxy it never dials.
      plugin: socksUpstreamPlugin(socks ?? { hostname: "", port: 0 }),
      inactiveBecause: socks ? undefined : "only with --socks-upstream HOST:PORT",
    },
    { plugin: { ...kubernetes, setup: () => ({ resolvers: [clusterResolver] }) } },
    { plugin: portForwardPlugin({ access: r.access, telemetry: r.telemetry }) },
    { plugin: directPlugin },
    { plugin: dnsModesPlugin },
  ];
  return Object.assign(entries, { clusterResolver });
}
