/**
 * The built-in port-forward dialer: reaches a pod's port through the API server's
 * `pods/{name}/portforward`, authenticating exactly as the kubeconfig says (tokens, client
 * certificates, exec plugins — credentials are re-applied on every dial, so expiring tokens
 * refresh). Transport: one SPDY/3.1 session per pod tunnelled over a WebSocket (KEP-4006,
 * docs/portforward.md §3–§7), each connection a stream pair on it; when a server does not tunnel
 * SPDY (before 1.31, or the gate off) the same session over a direct `Upgrade: SPDY/3.1` (§2,
 * kubectl's transport and fallback); when that is refused too (a proxy that passes only WebSocket
 * upgrades), one v4 channel WebSocket per connection (§8). The choice is remembered per API
 * server. A session that closes — or stops answering PINGs, or outlived a suspend of the machine —
 * is re-opened (with fresh credentials) by the next dial (link_liveness.ts).
 */
import type { ApiAccess } from "../../core/k8s/api_access.ts";
import { apiRequestOptions } from "../../core/k8s/api_connection.ts";
import {
  type Dialer,
  DialError,
  type DialTarget,
  type Duplex,
  type PluginModule,
} from "../../mod.ts";
import { NoTelemetry, type TelemetrySink } from "../../core/telemetry.ts";
import { openV4Stream } from "./v4_stream.ts";
import { PortForwardSession, SpdyUnavailable } from "./forward_session.ts";
import { CredentialsRefused } from "./spdy_upgrade.ts";
import { setConnectionNoDelay } from "../../ffi/linux/socket_nodelay.ts";
import type { LivenessOptions } from "./link_liveness.ts";
import { logger } from "../../core/log.ts";

/** How connections reach the pod: see the module comment. */
export type PortForwardTransport = "tunnel" | "direct" | "v4";

/** Options for {@link createPortForwardDialer}. */
export interface PortForwardDialerOptions {
  /** The API server and credentials (absent: no kubeconfig, every dial fails saying so). */
  access: ApiAccess | undefined;
  /**
   * The transports to try, in order, each API server keeping the first that its upgrade does not
   * refuse (default tunnel, direct, v4: newest first).
   */
  transports?: PortForwardTransport[];
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
  const sessions = new Map<string, Promise<PortForwardSession>>();
  const order = options.transports ?? ["tunnel", "direct", "v4"];
  if (order.length === 0) throw new Error("the port-forward dialer needs a transport to try");
  /** Per API server, where in `order` the transport its upgrades did not refuse is. */
  const chosen = new Map<string, number>();
  const transportOf = (server: string) => order[chosen.get(server) ?? 0];
  /** The server refused `transport`: later dials start at the one after it. */
  const refused = (server: string, transport: PortForwardTransport) => {
    const next = order.indexOf(transport) + 1;
    if (next < order.length && next > (chosen.get(server) ?? 0)) chosen.set(server, next);
    return next < order.length;
  };
  const podUrl = (
    target: Extract<DialTarget, { kind: "pod" }>,
    query: string,
    scheme: "ws" | "http" = "ws",
  ) => {
    const server = serverOf().replace(/\/$/, "").replace(/^http/, scheme);
    return `${server}/api/v1/namespaces/${encodeURIComponent(target.namespace)}/pods/${
      encodeURIComponent(target.name)
    }/portforward${query}`;
  };
  const warned = new Set<string>();
  const warn = options.warn ?? ((message: string) => logger("portforward").warn(message));
  const serverOf = () => {
    if (!options.access) throw new DialError("error", "there is no kubeconfig to dial with");
    return options.access.server;
  };
  const wsOptions = () =>
    apiRequestOptions(options.access!, {
      handshakeTimeoutMs: options.handshakeTimeoutMs ?? 10_000,
      warn: (m) => {
        if (warned.has(m)) return;
        warned.add(m);
        warn(m);
      },
      noDelay: Deno.build.os === "linux" ? setConnectionNoDelay : undefined,
    });
  const session = (target: Extract<DialTarget, { kind: "pod" }>): Promise<PortForwardSession> => {
    const key = `${target.namespace}/${target.name}`;
    const existing = sessions.get(key);
    if (existing) {
      return existing.then((s) => {
        if (s.reusable) return s;
        sessions.delete(key);
        return session(target);
      });
    }
    const opening = openSession(target);
    sessions.set(key, opening);
    opening.catch(() => sessions.delete(key));
    return opening;
  };
  /** A session by the server's transport; a refusal moves the server on to the next one. */
  const openSession = async (target: Extract<DialTarget, { kind: "pod" }>) => {
    const server = serverOf();
    const o = await wsOptions();
    if (transportOf(server) === "tunnel") {
      try {
        return await PortForwardSession.open(podUrl(target, ""), o, options.liveness);
      } catch (error) {
        if (!(error instanceof SpdyUnavailable) || !refused(server, "tunnel")) throw error;
      }
    }
    if (transportOf(server) !== "direct") throw new SpdyUnavailable("no SPDY transport left");
    try {
      return await PortForwardSession.openDirect(podUrl(target, "", "http"), o, options.liveness);
    } catch (error) {
      if (error instanceof SpdyUnavailable) refused(server, "direct");
      throw error;
    }
  };
  const dial = async (
    target: DialTarget,
    { signal, early }: { signal: AbortSignal; early?: boolean },
  ): Promise<Duplex> => {
    if (target.kind !== "pod") throw new DialError("unreachable", "not a pod target");
    const server = serverOf();
    const started = performance.now();
    if (transportOf(server) !== "v4") {
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
        // Refused by every SPDY transport: the server goes to v4, if v4 is to be tried.
        if (transportOf(server) !== "v4") {
          throw new DialError(
            "error",
            `the API server refused every port-forward transport tried (${error.message})`,
          );
        }
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
  };
  return {
    name: "portforward",
    accepts: (target: DialTarget) => target.kind === "pod",
    dial: (target, dialOptions) =>
      dial(target, dialOptions).catch((error) => {
        // Revoked or rotated: the next dial fetches the credentials afresh.
        if (error instanceof CredentialsRefused) options.access?.rejected();
        throw error;
      }),
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
