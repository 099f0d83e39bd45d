/**
 * The built-in port-forward dialer: reaches a pod's port through the API server's
 * `pods/{name}/portforward`, authenticating exactly as the kubeconfig says (tokens, client
 * certificates, exec plugins — credentials are re-applied on every dial, so expiring tokens
 * refresh). Transport: one SPDY/3.1 session per pod tunnelled over a WebSocket (kubernetes.md §3,
 * KEP-4006), each connection a stream pair on it; when a server does not tunnel SPDY (before 1.31,
 * or the gate off), one v4 channel WebSocket per connection (§2). The choice is remembered per API
 * server. A session that closes — or stops answering PINGs, or outlived a suspend of the machine —
 * is re-opened (with fresh credentials) by the next dial (link_liveness.ts).
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
import { SpdySession, SpdyUnavailable } from "./spdy_session.ts";
import { apiServerSocketOptions } from "./connection_options.ts";
import type { LivenessOptions } from "./link_liveness.ts";
import { logger } from "../../core/log.ts";

/** Options for {@link createPortForwardDialer}. */
export interface PortForwardDialerOptions {
  kubeConfig: KubeConfig;
  telemetry?: TelemetrySink;
  /**
   * How long a v4 dial waits after the port prefixes for a refusal on the error channel (default
   * 40 ms), so a refused pod is a dial failure the router can retry elsewhere. 0 behaves like
   * kubectl: the connection is handed over at once and a refusal ends it later.
   */
  v4RefusalGraceMs?: number;
  /** Limit for the WebSocket upgrade of a session or v4 connection (default 10 s). */
  handshakeTimeoutMs?: number;
  /**
   * Keepalive, dead-link and suspend detection for the links to the API server (defaults: PING
   * after 5 s of silence, dead after 15 s, suspend when clocks diverge by 10 s).
   */
  liveness?: LivenessOptions;
  /** Where warnings about the kubeconfig go (default: the "portforward" logger). */
  warn?: (message: string) => void;
}

/** Builds the dialer. It accepts pod targets. */
export function createPortForwardDialer(options: PortForwardDialerOptions): Dialer {
  const telemetry = options.telemetry ?? NoTelemetry;
  const sessions = new Map<string, Promise<SpdySession>>();
  const v4Only = new Set<string>();
  const podUrl = (target: Extract<DialTarget, { kind: "pod" }>, query: string) => {
    const cluster = options.kubeConfig.getCurrentCluster();
    if (!cluster) throw new DialError("error", "the kubeconfig has no current cluster");
    const server = cluster.server.replace(/\/$/, "").replace(/^http/, "ws");
    return `${server}/api/v1/namespaces/${encodeURIComponent(target.namespace)}/pods/${
      encodeURIComponent(target.name)
    }/portforward${query}`;
  };
  const warned = new Set<string>();
  const warn = options.warn ?? ((message: string) => logger("portforward").warn(message));
  const wsOptions = () =>
    apiServerSocketOptions(options.kubeConfig, options.handshakeTimeoutMs ?? 10_000, (m) => {
      if (warned.has(m)) return;
      warned.add(m);
      warn(m);
    });
  const session = (target: Extract<DialTarget, { kind: "pod" }>): Promise<SpdySession> => {
    const key = `${target.namespace}/${target.name}`;
    const existing = sessions.get(key);
    if (existing) {
      return existing.then((s) => {
        if (s.reusable) return s;
        sessions.delete(key);
        return session(target);
      });
    }
    const opening = wsOptions().then((o) =>
      SpdySession.open(podUrl(target, ""), o, options.liveness)
    );
    sessions.set(key, opening);
    opening.catch(() => sessions.delete(key));
    return opening;
  };
  return {
    name: "portforward",
    accepts: (target: DialTarget) => target.kind === "pod",
    async dial(target, { signal, early }): Promise<Duplex> {
      if (target.kind !== "pod") throw new DialError("unreachable", "not a pod target");
      const server = options.kubeConfig.getCurrentCluster()?.server ?? "";
      const started = performance.now();
      if (!v4Only.has(server)) {
        try {
          const s = await session(target);
          const duplex = await s.openStream(target.port, signal, early);
          telemetry.emit({
            type: "portforward_dial",
            seconds: (performance.now() - started) / 1000,
            reused: true,
          });
          return duplex;
        } catch (error) {
          if (!(error instanceof SpdyUnavailable)) throw error;
          v4Only.add(server); // this API server does not tunnel SPDY: use v4 from now on
        }
      }
      const duplex = await openV4Stream(
        podUrl(target, `?ports=${target.port}`),
        await wsOptions(),
        signal,
        options.v4RefusalGraceMs,
        early,
        options.liveness,
      );
      telemetry.emit({
        type: "portforward_dial",
        seconds: (performance.now() - started) / 1000,
        reused: false,
      });
      return duplex;
    },
    close() {
      for (const s of sessions.values()) s.then((session) => session.close(), () => {});
      sessions.clear();
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
