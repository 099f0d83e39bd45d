/** k8stun's proxy front (SOCKS5 and HTTP on loopback) over the simulated demo cluster. */
import { ApiAccess } from "../../core/k8s/api_access.ts";
import { startClusterSync } from "../../core/cluster/sync.ts";
import { DEMO_FIXTURE, startSimCluster } from "../../sim/mod.ts";
import { builtinPlugins } from "../../plugins/builtin.ts";
import { startProxyFront } from "../../cli/proxy_front.ts";

/** Starts the proxy; dispose to stop it and the cluster. */
export async function proxyOverSim(
  auth?: { username: string; password: string },
  options: { allowLocal?: boolean } = {},
) {
  const sim = await startSimCluster({ fixture: DEMO_FIXTURE });
  const kc = ApiAccess.fromText(sim.kubeconfig("demo"));
  const view = await startClusterSync({ access: kc, namespaces: ["demo"] });
  await view.synced;
  const scope = {
    clusterDomain: "cluster.local",
    isNamespace: (ns: string) => view.store.namespaces().includes(ns),
    explicitNamespaces: new Set<string>(),
    defaultNamespace: "demo",
  };
  const plugins = builtinPlugins({ view: view.store, scope, access: kc });
  const parts = await Promise.all(plugins.map((p) => p.setup({} as never)));
  const proxy = startProxyFront({
    store: view.store,
    scope,
    resolvers: parts.flatMap((p) => p.resolvers ?? []),
    dialers: parts.flatMap((p) => p.dialers ?? []),
    socks: { hostname: "127.0.0.1", port: 0 },
    http: { hostname: "127.0.0.1", port: 0 },
    auth,
    allowLocal: options.allowLocal,
  });
  return {
    sim,
    store: view.store,
    socks: `127.0.0.1:${proxy.socksAddress!.port}`,
    http: `127.0.0.1:${proxy.httpAddress!.port}`,
    proxy,
    async [Symbol.asyncDispose]() {
      await proxy.close();
      view.close();
      await sim.close();
    },
  };
}
