/**
 * TUN mode's data plane, main-thread side: takes an open device (core/net/device/tun_device.ts,
 * opened by the caller for its OS), routes the VIP range into it, starts the packet-loop Worker on
 * the device's end through its link (loop_link.ts), and hands the loop's flows to the relay
 * (flow_relay.ts). This file knows no OS: the device and the host services come in.
 *
 * It also keeps the loop alive: a watchdog reads the loop's heartbeat every second and reports a
 * stall; a loop that failed, crashed or stayed stalled is replaced by a new one (its connections
 * are reset), at most {@link MAX_RESTARTS} times in {@link RESTART_WINDOW_MS}, after which the data
 * plane is down. And it keeps the loop's list of this host's addresses current: only packets from
 * them are served (core/net/packet_loop/local_sources.ts).
 */
import type { Router } from "../../router.ts";
import { logger } from "../../log.ts";
import type { TelemetrySink } from "../../telemetry.ts";
import { MAX_LOCAL_ADDRESSES } from "../packet_loop/local_sources.ts";
import { type LoopState, Watchdog } from "./watchdog.ts";
import type { UdpService } from "../stack_types.ts";
import { type LoopTestFault, MAX_RECORD_PAYLOAD } from "../packet_loop/protocol.ts";
import type { DnsForwarding } from "../packet_loop/dns_forwarder.ts";
import { type LoopHandlers, PacketLoopLink } from "./loop_link.ts";
import { FlowRelay } from "./flow_relay.ts";
import type { OffloadCapabilities, TunDevice, TunHost } from "../device/tun_device.ts";
import { DEFAULT_ACCEPTING_MEMORY_MS } from "../accepting_destinations.ts";

const log = logger("tun");
/** How often the watchdog reads the heartbeat and the host's addresses are listed again. */
const WATCH_INTERVAL_MS = 1000;
/** A heartbeat still this long is a stall (an idle loop bumps it at least every second). */
export const STALLED_AFTER_MS = 3000;
/** A loop stalled this long is replaced. */
const REPLACE_STALLED_AFTER_MS = 10_000;
/** Restarts allowed within {@link RESTART_WINDOW_MS}; one more and the data plane is down. */
export const MAX_RESTARTS = 5;
const RESTART_WINDOW_MS = 60_000;
/** What the relay tells a connection the loop took down with it. */
const LOOP_RESTARTED = "the packet loop restarted; connections open at that moment were reset";

/** Options for {@link startTunDataPlane}. */
export interface TunDataPlaneOptions {
  /** An open, configured device; the data plane owns it from now on and closes it. */
  device: TunDevice;
  /** The host services for the device's OS (the caller keeps it open until after close). */
  host: TunHost;
  /** The VIP range: routed into the device. */
  network: { base: number; prefix: number };
  router: Router;
  telemetry?: TelemetrySink;
  idleTimeoutMs: number;
  /** The UDP service at routed addresses (DNS); without one, every UDP port is refused. */
  udp?: UdpService;
  /** Connections relayed at once; past it new ones are refused (default 4,096). */
  maxConnections?: number;
  receiveBuffer?: number;
  sendBuffer?: number;
  /**
   * Microseconds the packet loop keeps polling without sleeping after activity (default
   * {@link DEFAULT_BUSY_POLL_US}; 0 = sleep at once). Trades CPU while traffic flows for latency.
   */
  busyPollMicros?: number;
  /**
   * How long a successful dial lets new connections to the same VIP and port be answered before
   * their own dial (ms; default 30 s, 0 = every connection is dialed first; docs/tcp.md §3.1).
   */
  acceptingMemoryMs?: number;
  /**
   * Test hook: the first loop fails this way (default: from K8STUN_TEST_LOOP_FAULT,
   * `throw@<ms>` or `spin@<ms>`; unset in production).
   */
  testFault?: LoopTestFault;
}

/** How the data plane is doing (for `/healthz`). */
export interface DataPlaneHealth {
  /** up; stalled (the loop made no progress for seconds); down (it failed too often). */
  state: LoopState;
  /** Loops started again after a failure or a stall. */
  restarts: number;
  /** Why the last loop ended, if one did. */
  lastFailure?: string;
  /** Exceptions the loops contained (each reset one connection). */
  faults: number;
  /** Packets dropped because their source was not an address of this host. */
  foreignDrops: number;
  /**
   * Datagrams dropped because too many already waited for the main thread (a flood to k8stun's
   * DNS; core/net/packet_loop/datagram_quota.ts).
   */
  datagramDrops: number;
}

/** Covers a dial and a request/response through a local dialer; costs nothing when idle. */
export const DEFAULT_BUSY_POLL_US = 300;

/** A running data plane. */
export interface TunDataPlane {
  name: string;
  /** What the kernel offloads for the device (nothing: checksums in TypeScript, MTU packets). */
  offload: OffloadCapabilities;
  /** The TUN's interface index (for routes other modules add through it). */
  ifindex(): number;
  /**
   * Answers packets to these addresses inside the TUN (tun_route DNS), however they are routed
   * there; kept across a restart of the packet loop.
   */
  serveAddresses(addresses: number[]): void;
  /**
   * Lets the packet loop forward the DNS names no claim covers itself (null: stop); kept across a
   * restart of the loop. Returns false when this loop cannot (its OS module opens no sockets).
   */
  forwardDns(config: DnsForwarding | null): boolean;
  activeFlows(): number;
  health(): DataPlaneHealth;
  /** Connections open per VIP, for stale-VIP reclaim. */
  isVipBusy(vip: string): boolean;
  close(): Promise<void>;
}

/** Routes the VIP range into the device and starts relaying. */
export async function startTunDataPlane(options: TunDataPlaneOptions): Promise<TunDataPlane> {
  const { device, host } = options;
  try {
    device.addRoutes([{ address: options.network.base, prefix: options.network.prefix }]);
  } catch (error) {
    device.close();
    throw error;
  }
  const relay = new FlowRelay(options);
  // Set once the Worker runs; events arrive only after that.
  let link!: PacketLoopLink;
  /** Addresses served besides the VIP range: a new loop is told them again. */
  const routed = new Set<number>();
  /** DNS forwarding in the loop, as last configured: a new loop is configured again. */
  let dnsForwarding: DnsForwarding | null = null;

  const parameters = {
    device: device.packetIo,
    network: options.network,
    receiveBuffer: options.receiveBuffer ?? 1024 * 1024,
    sendBuffer: options.sendBuffer ?? 1024 * 1024,
    idleTimeoutMs: options.idleTimeoutMs,
    busyPollMs: (options.busyPollMicros ?? DEFAULT_BUSY_POLL_US) / 1000,
    acceptingMemoryMs: options.acceptingMemoryMs ?? DEFAULT_ACCEPTING_MEMORY_MS,
    udpPorts: [...options.udp?.ports ?? []],
  };
  /**
   * The host's addresses the loop admits as sources, the device's own address always among them;
   * the last list when the host cannot be asked (getifaddrs fails only when out of memory).
   */
  let localAddresses = [device.address];
  const hostAddresses = (): number[] => {
    try {
      const addresses = host.localIpv4Addresses();
      if (!addresses.includes(device.address)) addresses.push(device.address);
      return addresses.slice(0, MAX_LOCAL_ADDRESSES);
    } catch (error) {
      log.debug("cannot list the host's addresses: {message}", { message: String(error) });
      return localAddresses;
    }
  };
  localAddresses = hostAddresses();
  let generation = 0;
  /** Starts a loop whose events reach the relay only while it is the current one. */
  const startLink = async (testFault?: LoopTestFault) => {
    const current = ++generation;
    const handlers: LoopHandlers = {
      event: (event, loop) => {
        if (current === generation) relay.event(event, loop);
      },
      data: (id, bytes, fill) => {
        if (current === generation) relay.appData(id, bytes, fill);
      },
    };
    const started = await PacketLoopLink.start(
      host,
      { ...parameters, localAddresses, testFault },
      handlers,
    );
    for (const address of routed) started.send({ op: "route", address, add: true });
    if (dnsForwarding && started.dialsInLoop) {
      started.send({ op: "dns-forwarding", config: dnsForwarding });
    }
    started.ended.then((reason) => replace(started, reason));
    return started;
  };

  let state: LoopState = "up";
  let watchdog = new Watchdog(STALLED_AFTER_MS, performance.now());
  const restartTimes: number[] = [];
  let restarts = 0;
  let lastFailure: string | undefined;
  let closed = false;
  /** Counters of the loops replaced so far (the current loop's are added on read). */
  let pastFaults = 0;
  let pastForeignDrops = 0;
  let pastDatagramDrops = 0;
  /** A replacement under way: closing waits for it (the new loop must not outlive the TUN). */
  let replacing: Promise<void> = Promise.resolve();
  let retiring: PacketLoopLink | undefined;
  /**
   * Replaces a loop that ended or stalled: its connections are reset, a new one starts. The old
   * one stays current (closed: operations go nowhere) until the new one runs.
   */
  const replace = (failed: PacketLoopLink, reason: string) => {
    if (failed !== link || failed === retiring || closed) return;
    retiring = failed;
    replacing = replaceNow(failed, reason);
  };
  const replaceNow = async (failed: PacketLoopLink, reason: string) => {
    lastFailure = reason;
    const now = performance.now();
    restartTimes.push(now);
    while (restartTimes[0] < now - RESTART_WINDOW_MS) restartTimes.shift();
    const giveUp = restartTimes.length > MAX_RESTARTS;
    log.error("{reason}; {next}", {
      reason,
      next: giveUp
        ? `it failed ${restartTimes.length} times within ${RESTART_WINDOW_MS / 1000} s: ` +
          "the TUN data plane is down — restart k8stun (and report the messages above)"
        : "starting a new packet loop (connections open now are reset)",
    });
    state = giveUp ? "down" : "stalled";
    relay.resetAll(LOOP_RESTARTED);
    pastFaults += failed.faults;
    pastForeignDrops += failed.foreignDrops;
    pastDatagramDrops += failed.datagramDrops;
    await failed.close();
    if (giveUp || closed) return;
    try {
      link = await startLink();
      restarts++;
      watchdog = new Watchdog(STALLED_AFTER_MS, performance.now());
      state = "up";
    } catch (error) {
      state = "down";
      lastFailure = error instanceof Error ? error.message : String(error);
      log.error("cannot start a new packet loop: {message}; the TUN data plane is down", {
        message: lastFailure,
      });
    }
  };
  /** Every second: the heartbeat (stalled? resumed?) and the host's addresses (changed?). */
  const watch = () => {
    if (state === "down") return;
    const addresses = hostAddresses();
    if (addresses.join() !== localAddresses.join()) {
      localAddresses = addresses;
      link.send({ op: "local-addresses", addresses });
    }
    if (link === retiring) return; // being replaced: the new loop gets a new watchdog
    const still = watchdog.observe(link.heartbeat, performance.now());
    if (watchdog.stalled(still)) {
      if (state === "up") {
        state = "stalled";
        log.error(
          "packet loop stalled: no progress for {seconds} s; connections through the TUN hang " +
            "(a new loop replaces it after {limit} s)",
          { seconds: Math.round(still / 1000), limit: REPLACE_STALLED_AFTER_MS / 1000 },
        );
      }
      if (still >= REPLACE_STALLED_AFTER_MS) {
        replace(link, `packet loop stalled for ${Math.round(still / 1000)} s`);
      }
    } else if (state === "stalled") {
      state = "up";
      log.info("packet loop resumed");
    }
  };

  let watchTimer: ReturnType<typeof setInterval> | undefined;
  try {
    link = await startLink(options.testFault ?? testFaultFromEnv());
    watchTimer = setInterval(watch, WATCH_INTERVAL_MS);
  } catch (error) {
    relay.close("the packet loop did not start");
    device.close();
    throw error;
  }
  let closing: Promise<void> | undefined;
  const serveAddresses = (addresses: number[]) => {
    for (const address of addresses) {
      routed.add(address);
      link.send({ op: "route", address, add: true });
    }
  };
  const forwardDns = (config: DnsForwarding | null) => {
    if (config && !link.dialsInLoop) return false;
    // Thousands of namespaces could outgrow a ring record: then the main thread decides every
    // name (still correct, only slower).
    const fits = !config || JSON.stringify(config).length <= MAX_RECORD_PAYLOAD / 2;
    dnsForwarding = config && (fits ? config : {
      ...config,
      claims: { ...config.claims, suffixes: [], everything: true },
    });
    if (dnsForwarding || link.dialsInLoop) {
      link.send({ op: "dns-forwarding", config: dnsForwarding });
    }
    return true;
  };
  return {
    name: device.name,
    offload: device.offload,
    ifindex: () => device.ifindex(),
    serveAddresses,
    forwardDns,
    activeFlows: () => relay.activeFlows,
    health: () => ({
      state,
      restarts,
      lastFailure,
      // A loop being replaced is counted in the past already.
      faults: pastFaults + (link === retiring ? 0 : link.faults),
      foreignDrops: pastForeignDrops + (link === retiring ? 0 : link.foreignDrops),
      datagramDrops: pastDatagramDrops + (link === retiring ? 0 : link.datagramDrops),
    }),
    isVipBusy: (vip) => relay.isVipBusy(vip),
    close() {
      closing ??= (async () => {
        closed = true;
        clearInterval(watchTimer);
        await replacing;
        relay.close("k8stun is stopping");
        await link.close();
        device.close(); // the interface and its routes go with it
      })();
      return closing;
    },
  };
}

/** K8STUN_TEST_LOOP_FAULT=`throw@<ms>` or `spin@<ms>`: the test hook of {@link LoopTestFault}. */
function testFaultFromEnv(): LoopTestFault | undefined {
  let value: string | undefined;
  try {
    value = Deno.env.get("K8STUN_TEST_LOOP_FAULT");
  } catch {
    return undefined; // no permission to read the environment: no test is running us
  }
  const match = /^(throw|spin)@(\d+)$/.exec(value ?? "");
  return match ? { kind: match[1] as LoopTestFault["kind"], afterMs: Number(match[2]) } : undefined;
}
