/** `k8stun proxy`: SOCKS5 and HTTP proxy into the cluster, without root. */
import type { Command } from "commander";
import { loadKubeConfig } from "../../core/kubeconfig.ts";
import { PROXY_LIMITS } from "../../core/proxy/server.ts";
import { startProxyFront } from "../proxy_front.ts";
import { loadSessionPlugins, syncCluster } from "../assemble.ts";
import { addFlags, converted, flag, flagWithDefault, readFlags, toggle } from "../option_table.ts";
import {
  checkListenAddress,
  clusterDomainFlag,
  integerIn,
  kubeconfigFlags,
  parseListenAddress,
  parseNamespaces,
  pluginFlags,
} from "../run_options.ts";
import { runUntilSignalled } from "../session.ts";

/** The flags of `proxy`, in `--help` order. */
export function proxyFlags() {
  return {
    socks: converted(
      flagWithDefault<string>("--listen-socks <addr>", "SOCKS5 listener", "127.0.0.1:1080", {
        parse: checkListenAddress,
      }),
      (v) => v ? parseListenAddress(v, 1080) : undefined,
    ),
    http: converted(
      flag("--listen-http <addr>", "HTTP proxy listener (CONNECT, http:// URLs, /proxy.pac)", {
        parse: checkListenAddress,
      }),
      (v) => v ? parseListenAddress(v, 8118) : undefined,
    ),
    proxyUser: flag("--proxy-user <user>", "require this username (SOCKS5 RFC 1929, HTTP Basic)"),
    proxyPassword: flag("--proxy-password <password>", "and this password", {
      env: "K8STUN_PROXY_PASSWORD",
    }),
    allowLocal: toggle(
      "--proxy-allow-local",
      "let clients reach this machine's loopback and link-local services through the proxy",
    ),
    maxConnections: flagWithDefault(
      "--proxy-max-connections <n>",
      "open client connections per listener; more are closed at once",
      PROXY_LIMITS.maxConnections,
      { parse: integerIn(1, 1_000_000, "--proxy-max-connections") },
    ),
    maxPerSource: flagWithDefault(
      "--proxy-max-per-source <n>",
      "open client connections per client address (all local clients share 127.0.0.1)",
      PROXY_LIMITS.maxPerSource,
      { parse: integerIn(1, 1_000_000, "--proxy-max-per-source") },
    ),
    ...kubeconfigFlags(),
    namespaces: flag<string[]>(
      "-n, --namespaces <list>",
      "namespaces to watch when listing all is forbidden",
      { parse: parseNamespaces },
    ),
    ...clusterDomainFlag(),
    ...pluginFlags(),
  };
}

/** Registers `proxy`. */
export function registerProxy(program: Command): void {
  const table = proxyFlags();
  addFlags(
    program.command("proxy").description("SOCKS5 and HTTP proxy into the cluster (no root needed)"),
    table,
  )
    .action(async (raw: Record<string, unknown>) => {
      const flags = readFlags(table, raw);
      if ((flags.proxyUser === undefined) !== (flags.proxyPassword === undefined)) {
        throw new Error("--proxy-user and --proxy-password go together");
      }
      const auth = flags.proxyUser
        ? { username: flags.proxyUser, password: flags.proxyPassword! }
        : undefined;
      const kube = loadKubeConfig({ kubeconfig: flags.kubeconfig, context: flags.context });
      const cluster = await syncCluster({
        kube,
        namespaces: flags.namespaces ?? [kube.namespace],
        explicitNamespaces: [],
        clusterDomain: flags.clusterDomain,
        defaultNamespace: kube.namespace,
      });
      const { sync, store, scope } = cluster;
      const plugins = await loadSessionPlugins(cluster, kube, flags);
      const proxy = startProxyFront({
        store,
        scope,
        resolvers: plugins.pluginResolvers,
        dialers: plugins.dialers,
        socks: flags.socks,
        http: flags.http,
        auth,
        allowLocal: flags.allowLocal,
        limits: { maxConnections: flags.maxConnections, maxPerSource: flags.maxPerSource },
      });
      console.log(
        `context ${kube.context} (${kube.server}); short names resolve in namespace ${kube.namespace}`,
      );
      if (proxy.socksAddress) {
        const a = proxy.socksAddress;
        console.log(
          `SOCKS5 on ${a.hostname}:${a.port}   curl --proxy socks5h://${a.hostname}:${a.port} http://SERVICE.NAMESPACE/`,
        );
      }
      if (proxy.httpAddress) {
        const a = proxy.httpAddress;
        console.log(
          `HTTP proxy on ${a.hostname}:${a.port}   curl -x http://${a.hostname}:${a.port} http://SERVICE.NAMESPACE/`,
        );
        console.log(`PAC file: http://${a.hostname}:${a.port}/proxy.pac`);
      }
      console.log("k8stun proxy is ready. Press Ctrl-C to stop.");
      await runUntilSignalled(async () => {
        await proxy.close();
        sync.close();
        plugins.close();
      });
    });
}
