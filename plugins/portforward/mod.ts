/**
 * The built-in port-forward dialer: reaches a pod's port through the API server's
 * `pods/{name}/portforward`, authenticating exactly as the kubeconfig says (tokens, client
 * certificates, exec plugins — credentials are re-applied on every dial, so expiring tokens
 * refresh). Transport: one v4 channel WebSocket per connection (kubernetes.md §2).
 */
import type { KubeConfig } from "@kubernetes/client-node";
import {
  type Dialer,
  DialError,
  type DialTarget,
  type Duplex,
  type PluginModule,
} from "../../mod.ts";
import { NoTelemetry, type TelemetrySink } from "../../core/telemetry.ts";
import { openV4Stream } from "./v4_stream.ts";

/** Options for {@link createPortForwardDialer}. */
export interface PortForwardDialerOptions {
  kubeConfig: KubeConfig;
  telemetry?: TelemetrySink;
}

/** Builds the dialer. It accepts pod targets. */
export function createPortForwardDialer(options: PortForwardDialerOptions): Dialer {
  const telemetry = options.telemetry ?? NoTelemetry;
  return {
    name: "portforward",
    accepts: (target: DialTarget) => target.kind === "pod",
    async dial(target, { signal }): Promise<Duplex> {
      if (target.kind !== "pod") throw new DialError("unreachable", "not a pod target");
      const cluster = options.kubeConfig.getCurrentCluster();
      if (!cluster) throw new DialError("error", "the kubeconfig has no current cluster");
      const server = cluster.server.replace(/\/$/, "").replace(/^http/, "ws");
      const url = `${server}/api/v1/namespaces/${encodeURIComponent(target.namespace)}/pods/${
        encodeURIComponent(target.name)
      }/portforward?ports=${target.port}`;
      const wsOptions: Record<string, unknown> = {};
      await options.kubeConfig.applyToHTTPSOptions(wsOptions);
      const started = performance.now();
      const duplex = await openV4Stream(url, wsOptions, signal);
      telemetry.emit({
        type: "portforward_dial",
        seconds: (performance.now() - started) / 1000,
        reused: false,
      });
      return duplex;
    },
  };
}

/** The dialer as a built-in plugin. */
export function portForwardPlugin(options: PortForwardDialerOptions): PluginModule {
  return {
    name: "portforward",
    version: "builtin",
    apiVersion: 1,
    kinds: ["dialer"],
    setup: () => ({ dialers: [createPortForwardDialer(options)] }),
  };
}
