/**
 * The built-in plugins, registered through the same API as third-party ones (mod.ts): the
 * Kubernetes resolver, the port-forward and direct dialers, and the DNS modes.
 */
import { KubeConfig } from "@kubernetes/client-node";
import type { PluginModule } from "../mod.ts";
import { ClusterStore } from "../core/cluster/store.ts";
import type { ClusterView } from "../core/cluster/types.ts";
import type { NameScope } from "../core/names.ts";
import type { TelemetrySink } from "../core/telemetry.ts";
import { directPlugin } from "./direct/mod.ts";
import { dnsModesPlugin } from "./dns/mod.ts";
import { kubernetesResolverPlugin } from "./kubernetes/mod.ts";
import { portForwardPlugin } from "./portforward/mod.ts";
import { type SocksUpstream, socksUpstreamPlugin } from "./socks_upstream/mod.ts";

/** What the built-ins are built over. */
export interface BuiltinRuntime {
  view: ClusterView;
  scope: NameScope;
  kubeConfig: KubeConfig;
  telemetry?: TelemetrySink;
  /** `--socks-upstream`: dial through this SOCKS5 proxy instead of port-forwarding. */
  socksUpstream?: SocksUpstream;
}

/** The built-in plugins; without a runtime, over an empty cluster (for `plugins list`). */
export function builtinPlugins(runtime?: BuiltinRuntime): PluginModule[] {
  const r = runtime ?? {
    view: new ClusterStore(),
    scope: {
      clusterDomain: "cluster.local",
      isNamespace: () => false,
      explicitNamespaces: new Set<string>(),
    },
    kubeConfig: new KubeConfig(),
  };
  return [
    ...(runtime?.socksUpstream ? [socksUpstreamPlugin(runtime.socksUpstream)] : []),
    kubernetesResolverPlugin(r.view, r.scope),
    portForwardPlugin({ kubeConfig: r.kubeConfig, telemetry: r.telemetry }),
    directPlugin,
    dnsModesPlugin,
  ];
}
