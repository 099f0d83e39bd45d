/**
 * Proxy mode's assembly, shared by `k8stun proxy` and `k8stun run --socks`: a router with the
 * Kubernetes resolver (short names in the context's namespace), the plugins, and a last resolver
 * that passes non-cluster names through to the direct dialer, so `curl -x` works for any URL
 * (except this machine's own services, unless allowed).
 */
import { lookup } from "node:dns/promises";
import { DialError, type Resolver, type Target } from "../mod.ts";
import type { ClusterStore } from "../core/cluster/store.ts";
import type { ListenerLimits } from "../core/guarded_listener.ts";
import { type NameScope, parseClusterName } from "../core/names.ts";
import { isLocalAddress } from "../core/proxy/local_address.ts";
import { pacFile } from "../core/proxy/pac.ts";
import { type ProxyServer, startProxy } from "../core/proxy/server.ts";
import type { ProxyAuth } from "../core/proxy/socks5.ts";
import { Router } from "../core/router.ts";
import type { VipPool } from "../core/vip.ts";
import { numberToIpv4 } from "../core/vip.ts";
import { createKubernetesResolver } from "../plugins/kubernetes/mod.ts";
import type { Dialer } from "../mod.ts";

/** Every address a name has, as the system resolver (getaddrinfo, /etc/hosts too) gives them. */
export type LookupAddresses = (name: string) => Promise<string[]>;

/** The system resolver, as a direct dial would use it. */
export const systemLookup: LookupAddresses = async (name) =>
  (await lookup(name, { all: true })).map((a) => a.address);

/** How the pass-through path treats destinations on this machine. */
export interface PassthroughOptions {
  /** Reach loopback, link-local and unspecified addresses too (`--proxy-allow-local`). */
  allowLocal?: boolean;
  /**
   * Host targets leave through a SOCKS upstream (`--socks-upstream`), which resolves names
   * itself: its loopback is not this machine's, and names only it can resolve must reach it.
   */
  viaUpstream?: boolean;
  lookup?: LookupAddresses;
}

/**
 * Names and addresses outside the cluster go out directly from this machine; a name in the
 * cluster's grammar that does not exist stays unresolved ("host unreachable", not a public lookup).
 * Destinations on this machine (loopback, link-local, unspecified; core/proxy/local_address.ts)
 * are refused unless allowed, also when a name resolves to one: the name is resolved here and the
 * checked address is what gets dialed, so a second lookup cannot answer differently (DNS
 * rebinding).
 */
export function passthroughResolver(
  scope: NameScope,
  options: PassthroughOptions = {},
): Resolver {
  const lookupAddresses = options.lookup ?? systemLookup;
  const refuse = (what: string) => {
    throw new DialError(
      "forbidden",
      `${what} is on this machine; the proxy reaches only the cluster and the network beyond ` +
        "(start it with --proxy-allow-local to reach local services)",
    );
  };
  const checked = async (destination: string): Promise<Target> => {
    if (options.allowLocal || options.viaUpstream) return { kind: "host", host: destination };
    const host = destination.toLowerCase().replace(/^\[|\]$/g, "").replace(/\.$/, "");
    if (host === "localhost" || host.endsWith(".localhost")) refuse(destination); // RFC 6761 §6.3
    if (isIpLiteral(host)) {
      if (isLocalAddress(host)) refuse(destination);
      return { kind: "host", host };
    }
    let addresses: string[];
    try {
      addresses = await lookupAddresses(host);
    } catch (error) {
      throw new DialError(
        "unreachable",
        `cannot resolve ${destination}: ${(error as Error).message}`,
      );
    }
    const local = addresses.find(isLocalAddress);
    if (local) refuse(`${destination} (${local})`);
    const address = addresses.find((a) => !a.includes(":")) ?? addresses[0];
    if (address === undefined) throw new DialError("unreachable", `${destination} has no address`);
    return { kind: "host", host: address };
  };
  return {
    name: "passthrough",
    resolveName: (name) => parseClusterName(name, scope) ? null : checked(name),
    resolveAddress: (address) => checked(address),
  };
}

function isIpLiteral(host: string): boolean {
  return /^\d+\.\d+\.\d+\.\d+$/.test(host) || host.includes(":");
}

/** Starts the proxy listeners over the given cluster and dialers. */
export function startProxyFront(options: {
  store: ClusterStore;
  scope: NameScope;
  /**
   * The plugins' resolvers without the cluster resolver (cli/assemble.ts `pluginResolvers`): the
   * front adds its own, which resolves short names in `scope.defaultNamespace`.
   */
  resolvers: Resolver[];
  dialers: Dialer[];
  vips?: VipPool;
  socks?: { hostname: string; port: number };
  http?: { hostname: string; port: number };
  auth?: ProxyAuth;
  /** `--proxy-allow-local`: the pass-through path may reach this machine's own services. */
  allowLocal?: boolean;
  /** Host targets are dialed through a SOCKS upstream (see {@link PassthroughOptions}). */
  viaUpstream?: boolean;
  /** Connection limits of the listeners (default core/proxy/server.ts `PROXY_LIMITS`). */
  limits?: Partial<ListenerLimits>;
}): ProxyServer {
  const resolvers = [
    ...options.resolvers,
    createKubernetesResolver(options.store, options.scope),
    passthroughResolver(options.scope, {
      allowLocal: options.allowLocal,
      viaUpstream: options.viaUpstream,
    }),
  ];
  const router = new Router({
    resolvers,
    dialers: options.dialers,
    cluster: options.store,
    vips: options.vips,
  });
  const network = options.vips?.network;
  const vipCidr = network && {
    base: numberToIpv4(network.base),
    mask: numberToIpv4((0xffffffff << (32 - network.prefix)) >>> 0),
  };
  const hostPort = (a?: { hostname: string; port: number }) => a && `${a.hostname}:${a.port}`;
  const server: ProxyServer = startProxy({
    router,
    socks: options.socks,
    http: options.http,
    auth: options.auth,
    limits: options.limits,
    pac: () =>
      pacFile({
        clusterDomain: options.scope.clusterDomain,
        namespaces: options.store.namespaces(),
        vipCidr,
        socks: hostPort(server.socksAddress),
        http: hostPort(server.httpAddress),
      }),
  });
  return server;
}
