/** `k8stun proxy`: SOCKS5 and HTTP proxy into the cluster, without root. */
import type { Command } from "commander";
import { Option } from "commander";
import { loadKubeConfig } from "../../core/kubeconfig.ts";
import { PROXY_LIMITS } from "../../core/proxy/server.ts";
import { startProxyFront } from "../proxy_front.ts";
import { loadSessionPlugins, syncCluster } from "../assemble.ts";
import { integerIn, parseListenAddress, parseNamespaces } from "../run_options.ts";
import { runUntilSignalled } from "../session.ts";

interface ProxyFlags {
  listenSocks?: string;
  listenHttp?: string;
  proxyUser?: string;
  proxyPassword?: string;
  proxyAllowLocal?: boolean;
  proxyMaxConnections: number;
  proxyMaxPerSource: number;
  kubeconfig?: string;
  context?: string;
  namespaces?: string[];
  clusterDomain: string;
  pluginDir?: string[];
  pluginConfig?: string[];
}

/** Registers `proxy`. */
export function registerProxy(program: Command): void {
  program.command("proxy")
    .description("SOCKS5 and HTTP proxy into the cluster (no root needed)")
    .option("--listen-socks <addr>", "SOCKS5 listener", "127.0.0.1:1080")
    .option("--listen-http <addr>", "HTTP proxy listener (CONNECT, http:// URLs, /proxy.pac)")
    .option("--proxy-user <user>", "require this username (SOCKS5 RFC 1929, HTTP Basic)")
    .addOption(
      new Option("--proxy-password <password>", "and this password").env("K8STUN_PROXY_PASSWORD"),
    )
    .option(
      "--proxy-allow-local",
      "let clients reach this machine's loopback and link-local services through the proxy",
    )
    .option(
      "--proxy-max-connections <n>",
      "open client connections per listener; more are closed at once",
      integerIn(1, 1_000_000, "--proxy-max-connections"),
      PROXY_LIMITS.maxConnections,
    )
    .option(
      "--proxy-max-per-source <n>",
      "open client connections per client address (all local clients share 127.0.0.1)",
      integerIn(1, 1_000_000, "--proxy-max-per-source"),
      PROXY_LIMITS.maxPerSource,
    )
    .option("--kubeconfig <file>", "kubeconfig file")
    .option("-c, --context <name>", "kubeconfig context")
    .option(
      "-n, --namespaces <list>",
      "namespaces to watch when listing all is forbidden",
      parseNamespaces,
    )
    .option("--cluster-domain <domain>", "the cluster's DNS domain", "cluster.local")
    .option(
      "--plugin-dir <dir>",
      "plugin directory (repeatable)",
      (v: string, p: string[] = []) => [...p, v],
    )
    .option(
      "--plugin-config <name.key=value>",
      "plugin configuration (repeatable)",
      (v: string, p: string[] = []) => [...p, v],
    )
    .action(async (flags: ProxyFlags) => {
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
      const { view, store, scope } = cluster;
      // Proxy mode runs without root: third-party plugins always run isolated.
      const plugins = await loadSessionPlugins(cluster, kube, {
        pluginDirs: flags.pluginDir ?? [],
        pluginConfig: flags.pluginConfig ?? [],
        pluginIsolation: true,
        allowUnisolated: [],
      });
      const proxy = startProxyFront({
        store,
        scope,
        resolvers: plugins.pluginResolvers,
        dialers: plugins.dialers,
        socks: flags.listenSocks ? parseListenAddress(flags.listenSocks, 1080) : undefined,
        http: flags.listenHttp ? parseListenAddress(flags.listenHttp, 8118) : undefined,
        auth,
        allowLocal: flags.proxyAllowLocal === true,
        limits: {
          maxConnections: flags.proxyMaxConnections,
          maxPerSource: flags.proxyMaxPerSource,
        },
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
        view.close();
        plugins.close();
      });
    });
}
