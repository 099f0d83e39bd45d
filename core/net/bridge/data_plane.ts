/**
 * TUN mode's data plane, main-thread side: opens and configures the TUN, starts the packet-loop
 * Worker through its link (loop_link.ts), and relays each flow the stack announces through the
 * Router — dial first, then accept (SYN-ACK) or refuse (RST → ECONNREFUSED); bytes both ways
 * with credit-based backpressure (the app's receive window closes while the dialer is slow and
 * reopens as it drains); the app's FIN half-closes the dialer; the dialer's EOF sends FIN; a
 * dialer error mid-stream resets the app side, never a clean FIN on truncated data.
 *
 * It also keeps the loop alive: a watchdog reads the loop's heartbeat every second and reports a
 * stall; a loop that failed, crashed or stayed stalled is replaced by a new one (its connections
 * are reset), at most {@link MAX_RESTARTS} times in {@link RESTART_WINDOW_MS}, after which the data
 * plane is down. And it keeps the loop's list of this host's addresses current: only packets from
 * them are served (core/net/loop/local_sources.ts).
 */
import { asDialError, describe, type Router } from "../../router.ts";
import { logger } from "../../log.ts";
import { type ConnectionInfo, NoTelemetry, type TelemetrySink } from "../../telemetry.ts";
import { openLibc } from "../../../ffi/linux/libc.ts";
import { openTun } from "../../../ffi/linux/tun.ts";
import { interfaceIndex, RouteTable } from "../../../ffi/linux/rtnetlink.ts";
import { localIpv4Addresses } from "../../../ffi/linux/local_addresses.ts";
import { MAX_LOCAL_ADDRESSES } from "../loop/local_sources.ts";
import { type LoopState, Watchdog } from "./watchdog.ts";
import type { FlowId, FlowOpening, UdpDatagram } from "../stack_types.ts";
import type { LoopEvent, LoopTestFault } from "../loop/protocol.ts";
import { type LoopHandlers, MAX_CHUNK, PacketLoopLink } from "./loop_link.ts";
import type { Duplex } from "../../../mod.ts";
import { recyclingReader } from "../../recycling_reader.ts";
import { BufferPool } from "../../buffer_pool.ts";

const log = logger("tun");
/** Bytes handed to the Worker and not yet taken by the stack, per flow, before reading pauses. */
const SEND_CREDIT = 1024 * 1024;
/** The abort reason of a finished flow: given, so abort() does not build a DOMException. */
const FLOW_ENDED = new Error("the connection ended");
/** Write buffers for dialers that release chunks (Duplex.writeReleasesChunk). */
const writeBuffers = new BufferPool(MAX_CHUNK, 32);
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
  name?: string;
  network: { base: number; prefix: number };
  /** The TUN's own address (base+1). */
  address: number;
  mtu: number;
  router: Router;
  telemetry?: TelemetrySink;
  idleTimeoutMs: number;
  /** UDP datagrams to routed addresses (e.g. DNS); `reply` sends one back. */
  onUdp?: (datagram: UdpDatagram, reply: (datagram: UdpDatagram) => void) => void;
  receiveBuffer?: number;
  sendBuffer?: number;
  /** Checksum and segmentation offload with the kernel when it supports it (default on). */
  offload?: boolean;
  /**
   * Microseconds the packet loop keeps polling without sleeping after activity (default
   * {@link DEFAULT_BUSY_POLL_US}; 0 = sleep at once). Trades CPU while traffic flows for latency.
   */
  busyPollMicros?: number;
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
}

/** Covers a dial and a request/response through a local dialer; costs nothing when idle. */
export const DEFAULT_BUSY_POLL_US = 300;

/** A running data plane. */
export interface TunDataPlane {
  name: string;
  /** The TUN's interface index (for routes other modules add through it). */
  ifindex(): number;
  /**
   * Answers packets to these addresses inside the TUN (tun_route DNS), however they are routed
   * there; kept across a restart of the packet loop.
   */
  serveAddresses(addresses: number[]): void;
  /**
   * {@link serveAddresses}, plus a /32 route in the main table for each, so all their traffic
   * enters the TUN. The kernel drops the routes with the TUN, also after a crash.
   */
  addHostRoutes(addresses: number[]): void;
  activeFlows(): number;
  health(): DataPlaneHealth;
  /** Connections open per VIP, for stale-VIP reclaim. */
  isVipBusy(vip: string): boolean;
  close(): Promise<void>;
}

interface Flow {
  info: ConnectionInfo;
  /** The loop the flow lives in: its operations go there, and nowhere once it is replaced. */
  link: PacketLoopLink;
  duplex?: Duplex;
  writer?: WritableStreamDefaultWriter<Uint8Array>;
  writeChain: Promise<void>;
  credit: number;
  resume?: () => void;
  abort: AbortController;
  sent: number;
  received: number;
  reportedSent: number;
  reportedReceived: number;
  closed: boolean;
}

/** Opens the TUN and starts relaying. */
export async function startTunDataPlane(options: TunDataPlaneOptions): Promise<TunDataPlane> {
  const lib = openLibc();
  const libc = lib.symbols;
  const tun = openTun(libc, options.name ?? "", { offload: options.offload ?? true });
  try {
    // Over rtnetlink (platform-ffi.md §5.3): MTU, the address alone (/32), link up, then the
    // pool's route — routes are data k8stun owns, and they vanish with the TUN, also after a crash.
    const table = RouteTable.open(libc);
    try {
      const ifindex = interfaceIndex(tun.name, libc);
      table.configureLink(ifindex, options.address, options.mtu);
      const { base, prefix } = options.network;
      table.add({ dst: base, prefix, ifindex });
    } finally {
      table.close();
    }
  } catch (error) {
    libc.close(tun.fd);
    throw error;
  }
  const telemetry = options.telemetry ?? NoTelemetry;
  const flows = new Map<number, Flow>();
  const busy = new Map<string, number>();
  // Set once the Worker runs; events arrive only after that.
  let link!: PacketLoopLink;
  /** Host routes added so far: a new loop is told them again. */
  const routed = new Set<number>();

  const finishFlow = (flow: Flow, error?: string) => {
    if (flow.closed) return;
    flow.closed = true;
    flows.delete(flow.info.id);
    const count = (busy.get(flow.info.vip) ?? 1) - 1;
    if (count <= 0) busy.delete(flow.info.vip);
    else busy.set(flow.info.vip, count);
    reportBytes(flow);
    flow.abort.abort(FLOW_ENDED);
    flow.duplex?.abort();
    flow.resume?.();
    telemetry.emit({ type: "connection_closed", connection: flow.info, error });
  };
  const reportBytes = (flow: Flow) => {
    const sent = flow.sent - flow.reportedSent;
    const received = flow.received - flow.reportedReceived;
    if (sent === 0 && received === 0) return;
    flow.reportedSent = flow.sent;
    flow.reportedReceived = flow.received;
    telemetry.emit({
      type: "bytes",
      connectionId: flow.info.id,
      vip: flow.info.vip,
      sent,
      received,
    });
  };
  const bytesTimer = setInterval(() => {
    for (const flow of flows.values()) reportBytes(flow);
  }, 1000);

  const open = async (opening: FlowOpening) => {
    const flow: Flow = {
      link,
      info: {
        id: opening.id,
        vip: opening.dstAddress,
        createdAt: new Date(),
        srcIp: opening.srcAddress,
        srcPort: opening.srcPort,
        dstPort: opening.dstPort,
      },
      writeChain: Promise.resolve(),
      credit: SEND_CREDIT,
      abort: new AbortController(),
      sent: 0,
      received: 0,
      reportedSent: 0,
      reportedReceived: 0,
      closed: false,
    };
    flows.set(opening.id, flow);
    let opened;
    try {
      opened = await options.router.open(
        {
          address: opening.dstAddress,
          port: opening.dstPort,
          protocol: "tcp",
          front: "tun",
          source: { address: opening.srcAddress, port: opening.srcPort },
        },
        flow.abort.signal,
        { early: true },
      );
    } catch (error) {
      const failure = asDialError(error, "router");
      log.info("{vip}:{port} refused: {message}", {
        vip: opening.dstAddress,
        port: opening.dstPort,
        message: failure.message,
      });
      telemetry.emit({
        type: "dial_error",
        reason: failure.reason,
        target: `${opening.dstAddress}:${opening.dstPort}`,
        message: failure.message,
      });
      if (flow.closed) return; // its loop was replaced meanwhile
      flows.delete(opening.id);
      flow.link.send({ op: "refuse", id: opening.id });
      return;
    }
    if (flow.closed) {
      opened.duplex.abort();
      return;
    }
    flow.duplex = opened.duplex;
    flow.writer = opened.duplex.writable.getWriter();
    busy.set(flow.info.vip, (busy.get(flow.info.vip) ?? 0) + 1);
    log.debug("{vip}:{port} → {target} via {dialer}", {
      vip: opening.dstAddress,
      port: opening.dstPort,
      target: describe(opened.target),
      dialer: opened.dialer,
    });
    telemetry.emit({ type: "connection_opened", connection: flow.info });
    flow.link.send({ op: "accept", id: opening.id });
    pump(flow).catch(() => {});
  };

  /** Dialer → app: read, hand to the Worker while credit lasts, then wait for "sent". */
  const pump = async (flow: Flow) => {
    const reader = recyclingReader(flow.duplex!.readable);
    try {
      while (!flow.closed) {
        if (flow.credit <= 0) {
          await new Promise<void>((resolve) => flow.resume = resolve);
          flow.resume = undefined;
          continue;
        }
        const chunk = await reader.read();
        if (chunk === null) {
          if (!flow.closed) flow.link.send({ op: "finish", id: flow.info.id });
          return;
        }
        if (flow.closed) return;
        flow.credit -= chunk.length;
        flow.received += chunk.length;
        // Copied into the ring at once (then its memory takes the next read), unless queued.
        if (flow.link.send({ op: "send", id: flow.info.id, data: chunk })) reader.recycle(chunk);
      }
    } catch (error) {
      if (!flow.closed) {
        log.info("connection to {vip}:{port} failed mid-stream: {message}", {
          vip: flow.info.vip,
          port: flow.info.dstPort,
          message: error instanceof Error ? error.message : String(error),
        });
        flow.link.send({ op: "abort", id: flow.info.id });
        finishFlow(flow, error instanceof Error ? error.message : String(error));
      }
    } finally {
      reader.releaseLock();
    }
  };

  const onEvent = (event: Exclude<LoopEvent, { ev: "data" }>) => {
    switch (event.ev) {
      case "open":
        open(event.flow);
        return;
      case "eof": {
        const flow = flows.get(event.id);
        if (!flow?.writer) return;
        flow.writeChain = flow.writeChain.then(() => flow.writer!.close()).catch(() => {});
        return;
      }
      case "sent": {
        const flow = flows.get(event.id);
        if (!flow) return;
        flow.credit += event.n;
        if (flow.credit > 0) flow.resume?.();
        return;
      }
      case "closed": {
        const flow = flows.get(event.id);
        if (flow) finishFlow(flow, event.why === "closed" ? undefined : event.why);
        return;
      }
      case "udp":
        if (options.onUdp) {
          const datagram = { ...event.datagram, payload: link.keep(event.datagram.payload) };
          options.onUdp(datagram, (reply) => link.send({ op: "udp", datagram: reply }));
        }
        return;
    }
  };

  /**
   * App → dialer, bytes in order as the link delivers them; the app's window reopens as the
   * dialer takes them. A dialer that is done with a chunk once its write settles gets one from
   * the pool.
   */
  const onData = (id: FlowId, bytes: number, fill: (into: Uint8Array) => void) => {
    const flow = flows.get(id);
    if (!flow?.writer) return;
    const pooled = flow.duplex?.writeReleasesChunk === true;
    const data = pooled ? writeBuffers.take().subarray(0, bytes) : new Uint8Array(bytes);
    fill(data);
    flow.sent += bytes;
    flow.writeChain = flow.writeChain.then(() => flow.writer!.write(data)).then(() => {
      if (pooled) writeBuffers.give(new Uint8Array(data.buffer));
      flow.link.send({ op: "consumed", id, n: bytes });
    }, (error) => {
      if (flow.closed) return;
      flow.link.send({ op: "abort", id }); // T27e: the dialer's write side died
      finishFlow(flow, error instanceof Error ? error.message : String(error));
    });
  };

  const parameters = {
    tunFd: tun.fd,
    mtu: options.mtu,
    vnetHeader: tun.vnetHeader,
    network: options.network,
    receiveBuffer: options.receiveBuffer ?? 1024 * 1024,
    sendBuffer: options.sendBuffer ?? 1024 * 1024,
    idleTimeoutMs: options.idleTimeoutMs,
    busyPollMs: (options.busyPollMicros ?? DEFAULT_BUSY_POLL_US) / 1000,
  };
  /**
   * The host's addresses the loop admits as sources, its own TUN address always among them; the
   * last list when the host cannot be asked (getifaddrs fails only when out of memory).
   */
  let localAddresses = [options.address];
  const hostAddresses = (): number[] => {
    try {
      const addresses = localIpv4Addresses(libc);
      if (!addresses.includes(options.address)) addresses.push(options.address);
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
      event: (event) => {
        if (current === generation) onEvent(event);
      },
      data: (id, bytes, fill) => {
        if (current === generation) onData(id, bytes, fill);
      },
    };
    const started = await PacketLoopLink.start(
      libc,
      { ...parameters, localAddresses, testFault },
      handlers,
    );
    for (const address of routed) started.send({ op: "route", address, add: true });
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
    for (const flow of [...flows.values()]) finishFlow(flow, LOOP_RESTARTED);
    pastFaults += failed.faults;
    pastForeignDrops += failed.foreignDrops;
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
    clearInterval(bytesTimer);
    libc.close(tun.fd);
    lib.close();
    throw error;
  }
  let closing: Promise<void> | undefined;
  const serveAddresses = (addresses: number[]) => {
    for (const address of addresses) {
      routed.add(address);
      link.send({ op: "route", address, add: true });
    }
  };
  return {
    name: tun.name,
    ifindex: () => interfaceIndex(tun.name, libc),
    serveAddresses,
    addHostRoutes(addresses) {
      serveAddresses(addresses); // the stack answers first, then packets come
      const table = RouteTable.open(libc);
      try {
        const ifindex = interfaceIndex(tun.name, libc);
        for (const address of addresses) table.add({ dst: address, prefix: 32, ifindex });
      } finally {
        table.close();
      }
    },
    activeFlows: () => flows.size,
    health: () => ({
      state,
      restarts,
      lastFailure,
      // A loop being replaced is counted in the past already.
      faults: pastFaults + (link === retiring ? 0 : link.faults),
      foreignDrops: pastForeignDrops + (link === retiring ? 0 : link.foreignDrops),
    }),
    isVipBusy: (vip) => (busy.get(vip) ?? 0) > 0,
    close() {
      closing ??= (async () => {
        closed = true;
        clearInterval(bytesTimer);
        clearInterval(watchTimer);
        await replacing;
        for (const flow of [...flows.values()]) finishFlow(flow, "k8stun is stopping");
        await link.close();
        libc.close(tun.fd); // the TUN and its routes vanish with the last descriptor
        lib.close();
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
