/** The shared session assembly: the cluster resolver's role, and the proxy's flag table. */
import { ApiAccess } from "../../core/k8s/api_access.ts";
import { assert, assertEquals, assertThrows } from "../assert.ts";
import { loadSessionPlugins, type SessionCluster } from "../../cli/assemble.ts";
import { proxyFlags } from "../../cli/commands/proxy.ts";
import { ClusterStore } from "../../core/cluster/store.ts";
import { PROXY_LIMITS } from "../../core/proxy/server.ts";
import { pluginDir } from "../plugins/support.ts";
import { parseFlags } from "./parse_flags.ts";

const THIRD_PARTY_NAMED_KUBERNETES = `
export const plugin = {
  name: "corp-names", version: "0.0.1", apiVersion: 1, kinds: ["resolver"],
  setup: () => ({ resolvers: [{ name: "kubernetes", resolveName: () => null }] }),
};
`;

Deno.test("assembly: only the built-in cluster resolver is set apart, not a plugin's resolver that shares its name", async () => {
  await using dir = await pluginDir({ "corp.ts": THIRD_PARTY_NAMED_KUBERNETES });
  const store = new ClusterStore();
  const cluster = {
    store,
    scope: {
      clusterDomain: "cluster.local",
      isNamespace: () => false,
      explicitNamespaces: new Set(),
    },
  } as unknown as SessionCluster;
  const kube = {
    access: ApiAccess.fromText(
      "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n" +
        "contexts: [{name: c, context: {cluster: c}}]\ncurrent-context: c\n",
    ),
    files: [],
    context: "c",
    server: "s",
    namespace: "default",
  };
  const plugins = await loadSessionPlugins(cluster, kube, {
    pluginDirs: [dir.path],
    pluginConfig: [],
    pluginIsolation: false,
    allowUnisolated: [],
  });
  try {
    assertEquals(plugins.resolvers.length, plugins.pluginResolvers.length + 1);
    assertEquals(plugins.pluginResolvers.map((r) => r.name), ["kubernetes"], "the plugin's own");
    const [cluster_] = plugins.resolvers.filter((r) => !plugins.pluginResolvers.includes(r));
    assertEquals(cluster_.name, "kubernetes");
  } finally {
    plugins.close();
  }
});

const parseProxy = (...args: string[]) => parseFlags(proxyFlags(), args);

Deno.test("proxy options: defaults are SOCKS5 on 127.0.0.1:1080, no HTTP listener, isolated plugins", () => {
  const o = parseProxy();
  assertEquals(o.socks, { hostname: "127.0.0.1", port: 1080 });
  assertEquals(o.http, undefined);
  assertEquals(o.allowLocal, false);
  assertEquals(o.maxConnections, PROXY_LIMITS.maxConnections);
  assertEquals(o.maxPerSource, PROXY_LIMITS.maxPerSource);
  assertEquals(o.namespaces, undefined);
  assertEquals(o.clusterDomain, "cluster.local");
  assertEquals(o.pluginIsolation, true);
  assertEquals(o.pluginDirs, []);
  assertEquals(parseProxy("--listen-socks", "").socks, undefined, "an empty address turns it off");
  assertEquals(parseProxy("--listen-http", ":3128").http, { hostname: "127.0.0.1", port: 3128 });
});

Deno.test("proxy options: -n is a checked, repeatable comma list, as for run", () => {
  assertEquals(parseProxy("-n", "a, b", "-n", "c").namespaces, ["a", "b", "c"]);
  assertThrows(() => parseProxy("-n", "Not_A_Namespace"), /is not a namespace name/);
  assert(parseProxy("--cluster-domain", "Corp.Local.").clusterDomain === "corp.local");
});
