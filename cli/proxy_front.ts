/**
 * Proxy mode's assembly, shared by `k8stun proxy` and `k8stun run --socks`: a router with the
 * Kubernetes resolver (short names in the context's namespace), the plugins, and a last resolver
 * that passes non-cluster names through to the direct dialer, so `curl -x` works for any URL.
 */
import type { Resolver } from "../mod.ts";
import type { ClusterStore } from "../core/cluster/store.ts";
import { type NameScope, parseClusterName } from "../core/names.ts";
import { pacFile } from "../core/proxy/pac.ts";
import { type ProxyServer, startProxy } from "../core/proxy/server.ts";
import type { ProxyAuth } from "../core/proxy/socks5.ts";
import { Router } from "../core/router.ts";
import type { VipPool } from "../core/vip.ts";
import { numberToIpv4 } from "../core/vip.ts";
import { createKubernetesResolver } from "../plugins/kubernetes/mod.ts";
import type { Dialer } from "../mod.ts";

/**
 * Names and addresses outside the cluster go out directly from this machine; a name in the
 * cluster's grammar that does not exist stays unresolved ("host unreachable", not a public lookup).
 */
export function passthroughResolver(scope: NameScope): Resolver {
  return {
    name: "passthrough",
    resolveName: (name) => parseClusterName(name, scope) ? null : { kind: "host", host: name },
    resolveAddress: (address) => ({ kind: "host", host: address }),
  };
}

/** Starts the proxy listeners over the given cluster and dialers. */
export function startProxyFront(options: {
  store: ClusterStore;
  scope: NameScope;
  resolvers: Resolver[];
  dialers: Dialer[];
  vips?: VipPool;
  socks?: { hostname: string; port: number };
  http?: { hostname: string; port: number };
  auth?: ProxyAuth;
}): ProxyServer {
  const kubernetes = createKubernetesResolver(options.store, options.scope);
  const resolvers = [
    ...options.resolvers.filter((r) => r.name !== "kubernetes"),
    kubernetes,
    passthroughResolver(options.scope),
  ];
  const router = new Router({
    resolvers,
    dialers: options.dialers,
    cluster: options.store,
    vips: options.vips,
  });
  const network = options.vips?.network ?? { base: (198 << 24 | 18 << 16) >>> 0, prefix: 15 };
  const mask = numberToIpv4((0xffffffff << (32 - network.prefix)) >>> 0);
  const hostPort = (a?: { hostname: string; port: number }) => a && `${a.hostname}:${a.port}`;
  const server: ProxyServer = startProxy({
    router,
    socks: options.socks,
    http: options.http,
    auth: options.auth,
    pac: () =>
      pacFile({
        clusterDomain: options.scope.clusterDomain,
        namespaces: options.store.namespaces(),
        vipCidr: { base: numberToIpv4(network.base), mask },
        socks: hostPort(server.socksAddress),
        http: hostPort(server.httpAddress),
      }),
  });
  return server;
}
