/**
 * The composition root of TUN mode (`k8stun run`, `k8stun demo`): kubeconfig → cluster view →
 * VIP pool → plugins (built-ins and the plugin directory) → router → TUN data plane → DNS server
 * and mode → HTTP API → optional SOCKS listener; and the orderly shutdown in reverse.
 */
import { Metrics } from "../core/api/metrics.ts";
import { removeInstanceFile, writeInstanceFile } from "../core/api/instance_file.ts";
import { startApiServer } from "../core/api/server.ts";
import { TunnelState } from "../core/api/state.ts";
import { ClusterAnswerer } from "../core/dns/answer.ts";
import { type DnsListener, DnsServer } from "../core/dns/server.ts";
import { dnsOverTcpResolver, dnsOverTun } from "../core/dns/tun_reply.ts";
import { UpstreamResolver } from "../core/dns/upstream.ts";
import { FileJournal } from "../core/journal.ts";
import { invokingUser } from "../core/invoking_user.ts";
import type { LoadedKubeConfig } from "../core/kubeconfig.ts";
import { logger, pluginLogger } from "../core/log.ts";
import { startTunDataPlane, type TunDataPlane } from "../core/net/data_plane/data_plane.ts";
import { Router } from "../core/router.ts";
import { TelemetryFanout } from "../core/telemetry.ts";
import { VipPool, vipStateOptions } from "../core/vip.ts";
import { chooseVipRange, type RoutedRange } from "../core/vip_range.ts";
import { openFsIdentity } from "../ffi/linux/fs_identity.ts";
import { listenPolledUdp } from "../ffi/linux/udp_server.ts";
import { type HostNetwork, openHostNetwork } from "../ffi/host_network.ts";
import { openTunPlatform } from "../ffi/tun_platform.ts";
import { nameClaims } from "../core/dns/claimed_names.ts";
import type { DnsModeContext } from "../mod.ts";
import { boundTransport } from "../plugins/dns/bound_upstream.ts";
import { systemSocketTransport } from "../plugins/dns/socket_upstream.ts";
import { systemResolvers } from "../plugins/dns/resolv_conf.ts";
import { loadSessionPlugins, syncCluster } from "./assemble.ts";
import { cleanUpAfterDeadRuns } from "./commands/cleanup.ts";
import { preallocateVips } from "./preallocate.ts";
import { resolverDiversion } from "./resolver_diversion.ts";
import { LoopDnsForwarding } from "./loop_dns_forwarding.ts";
import { startProxyFront } from "./proxy_front.ts";
import type { RunOptions } from "./run_options.ts";
import type { StopSignals } from "./session.ts";

const log = logger("run");

/**
 * Where k8stun's own DNS listens in forward mode (a loopback address few programs use). macOS
 * configures only 127.0.0.1 on lo0 (binding another 127/8 address fails), and nothing of its own
 * listens on port 53 there.
 */
const FORWARD_DNS_ADDRESS = Deno.build.os === "darwin" ? "127.0.0.1" : "127.0.0.153";

/** A running tunnel. */
export interface Tunnel {
  tunName: string;
  vips: VipPool;
  apiUrl?: string;
  /** The DNS mode in effect (a requested tun_route may have fallen back to forward). */
  dnsMode: string;
  /** Why the mode in effect is not the one requested. */
  dnsNote?: string;
  close(): Promise<void>;
}

/**
 * Starts TUN mode. Prints progress with `say` (the user-facing session log). When `abort` fires
 * (Ctrl-C during start-up), start-up stops at the next step, undoes what it did, and rejects
 * with the abort reason.
 */
export async function startTunnel(
  options: RunOptions,
  kube: LoadedKubeConfig,
  say: (line: string) => void,
  signals?: Pick<StopSignals, "aborted" | "onForcedExit">,
): Promise<Tunnel> {
  const abort = signals?.aborted;
  const cleanups: (() => Promise<void> | void)[] = [];
  const closeAll = async () => {
    for (const cleanup of cleanups.reverse()) {
      const started = performance.now();
      try {
        await cleanup();
        log.debug("cleanup step took {ms} ms: {step}", {
          ms: Math.round(performance.now() - started),
          step: cleanup.toString().slice(0, 60),
        });
      } catch (error) {
        log.warn("cleanup step failed: {error}", { error: String(error) });
      }
    }
  };
  const hostNetwork = openHostNetwork();
  cleanups.push(() => hostNetwork.close());
  const ruleUndo = hostNetwork.ruleUndo;
  try {
    for (const line of (await cleanUpAfterDeadRuns(ruleUndo)).messages) {
      say(`repaired a previous run: ${line}`);
    }
    const state = new TunnelState();
    const metrics = new Metrics({
      vipsByType: () => {
        const counts: Record<string, number> = {};
        for (const v of state.vips()) counts[v.target.type] = (counts[v.target.type] ?? 0) + 1;
        return counts;
      },
      // Scraped only once the API is up, after the data plane below has started.
      tunDrops: () => {
        const { foreignDrops, datagramDrops } = dataPlane.health();
        return { foreign: foreignDrops, datagram_overload: datagramDrops };
      },
    });
    const telemetry = new TelemetryFanout(state, metrics);
    // Before anything waits on the cluster: a taken --vip-base is the user's to fix at once.
    const { network, skipped } = chooseVipRange(options.vipBase, systemRoutedRanges(hostNetwork));
    for (const s of skipped) {
      say(`the VIP range ${s.cidr} is already routed to ${s.owner}; not using it`);
    }
    say(`context ${kube.context} (${kube.server}), kubeconfig ${kube.files.join(":")}`);
    const cluster = await syncCluster({
      kube,
      namespaces: options.namespaces,
      explicitNamespaces: options.namespacesExplicit ? options.namespaces : [],
      clusterDomain: options.clusterDomain,
      syncTimeoutSeconds: options.syncTimeoutSeconds,
      telemetry,
      abort,
    });
    const { sync, store, scope } = cluster;
    cleanups.push(() => sync.close());
    const listed = performance.now();
    say(
      `cluster synced: ${store.namespaces().length} namespaces, ${store.services().length} services`,
    );

    const user = invokingUser();
    const vips = new VipPool({
      network,
      ...await vipStateOptions(
        kube.context,
        options.vipStateKey ?? kube.server,
        user,
        user.viaSudo ? openFsIdentity() : undefined,
      ),
      staleMs: options.staleVipTimeoutSeconds * 1000,
      telemetry,
    });
    cleanups.push(preallocateVips(vips, store, options, say));

    const plugins = await loadSessionPlugins(cluster, kube, { ...options, telemetry });
    cleanups.push(() => plugins.close());
    // DNS over TCP to an address k8stun answers DNS on inside the TUN goes to its DNS listener.
    const dnsInTun = new Set<string>([vips.dnsAddress]);
    const dnsOverTcp = dnsOverTcpResolver(dnsInTun, { host: FORWARD_DNS_ADDRESS, port: 53 });
    const router = new Router({
      resolvers: [dnsOverTcp, ...plugins.resolvers],
      dialers: plugins.dialers,
      cluster: store,
      vips,
    });

    abort?.throwIfAborted();
    const resolvers = await systemResolvers();
    const upstream = new UpstreamResolver(
      resolvers.upstreams,
      systemSocketTransport,
      resolvers.patience,
    );
    cleanups.push(() => upstream.close());
    const dns = new DnsServer(
      new ClusterAnswerer(store, vips, scope, plugins.pluginResolvers),
      upstream,
      telemetry,
    );

    const platform = openTunPlatform();
    cleanups.push(() => platform.close());
    const dataPlane: TunDataPlane = await startTunDataPlane({
      device: platform.openDevice({
        name: "",
        address: network.base + 1,
        mtu: options.mtu,
        offload: options.tunOffload,
      }),
      host: platform.host,
      network,
      busyPollMicros: options.busyPollMicros,
      maxConnections: options.maxConnections,
      acceptingMemoryMs: options.earlyConnectSeconds * 1000,
      router,
      telemetry,
      idleTimeoutMs: options.idleTimeoutSeconds * 1000,
      udp: dnsOverTun(dns),
    });
    cleanups.push(() => dataPlane.close());
    say(
      `TUN ${dataPlane.name} up: ${vips.tunAddress}, route ${vips.cidr}, MTU ${options.mtu}, ` +
        `offload ${dataPlane.offload.segmentation ? "on" : "off"}${
          options.tunOffload && !dataPlane.offload.segmentation ? " (the kernel refused it)" : ""
        }`,
    );

    const sweepEvery = vips.sweepIntervalMs;
    if (sweepEvery !== undefined) {
      const sweep = setInterval(() => vips.sweep((vip) => dataPlane.isVipBusy(vip)), sweepEvery);
      cleanups.push(() => clearInterval(sweep));
    }

    // DNS mode, from the plugins' DNS modes (built-in: tun_route, forward, disabled). Every
    // mode but disabled gets k8stun's DNS server on a loopback address to point the system at.
    const mode = plugins.dnsModes.find((m) => m.name === options.dnsMode);
    if (!mode) {
      const known = plugins.dnsModes.map((m) => m.name).join(", ");
      throw new Error(`no DNS mode "${options.dnsMode}" (available: ${known})`);
    }
    if (mode.name !== "disabled") {
      const listener = listenForSystemDns(dns);
      cleanups.push(() => listener.close());
    }
    // Names no claim covers are forwarded by the packet loop itself once tun_route binds the
    // resolvers (cli/loop_dns_forwarding.ts); the claims follow the namespaces.
    const pluginsAnswerNames = plugins.pluginResolvers.some((r) => r.resolveName !== undefined);
    const loopDns = new LoopDnsForwarding(
      dataPlane,
      upstream,
      () => nameClaims(scope, store.namespaces(), pluginsAnswerNames),
    );
    const followNamespaces = store.onChange(() => loopDns.update());
    cleanups.push(() => {
      followNamespaces();
      loopDns.stop();
    });
    const journal = new FileJournal(undefined, ruleUndo);
    const forgetForcedUndo = signals?.onForcedExit(() => journal.undoSync());
    if (forgetForcedUndo) cleanups.push(forgetForcedUndo);
    // After the mode's own revert: whatever the journal still holds (the DNS policy rules).
    cleanups.push(() => void journal.undoSync());
    const modeContext: DnsModeContext = {
      server: { address: FORWARD_DNS_ADDRESS, port: 53 },
      tunServer: { address: vips.dnsAddress, port: 53 },
      domains: nameClaims(scope, store.namespaces()).suffixes,
      tunName: dataPlane.name,
      resolvers,
      routeToTun: resolverDiversion({
        host: hostNetwork,
        dataPlane,
        journal,
        dnsAddresses: dnsInTun,
      }),
      bindUpstream: (server, device) => {
        upstream.useTransport(server, (_, capacity) => boundTransport(server, device, capacity));
        loopDns.bind(server, device);
      },
      unbindUpstream: (server) => {
        upstream.useTransport(server, systemSocketTransport);
        loopDns.unbind(server);
      },
      forwardTo: (servers) => {
        upstream.setServers(servers);
        loopDns.update();
      },
      journal,
      log: pluginLogger(`dns-${mode.name}`),
    };
    abort?.throwIfAborted();
    const applied = await mode.apply(modeContext) ?? { mode: mode.name };
    cleanups.push(() => mode.revert(modeContext));
    const dnsMode = applied.mode;
    const dnsNote = applied.reason;
    log.debug("start-up: DNS answers and VIP routes ready {ms} ms after the lists", {
      ms: Math.round(performance.now() - listed),
    });
    say(
      dnsMode === "disabled"
        ? "DNS: disabled — reach services by their VIPs"
        : `DNS (${dnsMode}${dnsNote ? `, because ${dnsNote}` : ""}): k8stun answers cluster ` +
          `names; other names go to ${resolvers.upstreams.join(", ") || "(no upstream)"}`,
    );

    if (options.socks) {
      const proxy = startProxyFront({
        store,
        scope: { ...scope, defaultNamespace: kube.namespace },
        resolvers: plugins.pluginResolvers,
        dialers: plugins.dialers,
        vips,
        socks: options.socks,
        allowLocal: options.proxyAllowLocal,
        viaUpstream: options.socksUpstream !== undefined,
      });
      cleanups.push(() => proxy.close());
      const a = proxy.socksAddress!;
      say(
        `SOCKS5 proxy on ${a.hostname}:${a.port} (curl --proxy socks5h://${a.hostname}:${a.port} …)`,
      );
    }

    let apiUrl: string | undefined;
    if (options.http > 0) {
      const api = await startApiServer({
        port: options.http,
        host: options.httpHost,
        token: options.httpToken,
        state,
        metrics,
        health: () => {
          const cluster = sync.state();
          const errors = cluster === "unreachable"
            ? [...sync.errors()]
            : sync.healthy()
            ? []
            : ["a Kubernetes watch is reconnecting"];
          const tun = dataPlane.health();
          if (tun.state !== "up") {
            errors.push(`the TUN packet loop is ${tun.state}: ${tun.lastFailure ?? "no progress"}`);
          }
          return {
            status: errors.length === 0 ? "ok" : "degraded",
            tun: tun.state,
            tun_restarts: tun.restarts,
            dns_mode: dnsMode,
            ...(dnsNote ? { dns_note: dnsNote, dns_mode_requested: options.dnsMode } : {}),
            cluster,
            ...(errors.length > 0 ? { errors } : {}),
          };
        },
      });
      apiUrl = api.url;
      const file = await writeInstanceFile({
        url: api.url,
        token: options.httpToken,
        startedAt: new Date().toISOString(),
        tun: dataPlane.name,
        vipRange: vips.cidr,
        context: kube.context,
      });
      cleanups.push(() => api.close());
      cleanups.push(() => removeInstanceFile(file));
      say(`HTTP API and dashboard: ${api.url}/`);
    }
    return {
      tunName: dataPlane.name,
      vips,
      apiUrl,
      dnsMode,
      dnsNote,
      close: closeAll,
    };
  } catch (error) {
    await closeAll();
    throw error;
  }
}

/** k8stun's DNS for the system; the address is taken when another k8stun owns the system's DNS. */
function listenForSystemDns(dns: DnsServer): DnsListener {
  try {
    // Linux: a libc socket, cheaper per datagram than Deno's (ffi/linux/udp_server.ts).
    return dns.listen(
      FORWARD_DNS_ADDRESS,
      53,
      Deno.build.os === "linux" ? listenPolledUdp : undefined,
    );
  } catch (error) {
    if (!(error instanceof Deno.errors.AddrInUse)) throw error;
    throw new Error(
      `${FORWARD_DNS_ADDRESS}:53 is taken: another k8stun (or DNS server) answers there, and ` +
        "only one k8stun can own the system's DNS — start this one with --dns-mode disabled",
    );
  }
}

/** The routes of this machine (all tables); none when they cannot be read (then nothing is skipped). */
function systemRoutedRanges(hostNetwork: HostNetwork): RoutedRange[] {
  try {
    return hostNetwork.routedRanges();
  } catch (error) {
    log.debug("cannot list the routes: {error}", { error: String(error) });
    return [];
  }
}
