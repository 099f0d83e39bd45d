/**
 * TUN mode's data plane, main-thread side: opens and configures the TUN, starts the packet-loop
 * Worker, and relays each flow the stack announces through the Router — dial first, then accept
 * (SYN-ACK) or refuse (RST → ECONNREFUSED); bytes both ways with credit-based backpressure (the
 * app's receive window closes while the dialer is slow and reopens as it drains); the app's FIN
 * half-closes the dialer; the dialer's EOF sends FIN; a dialer error mid-stream resets the app
 * side, never a clean FIN on truncated data.
 */
import { asDialError, describe, type Router } from "../../router.ts";
import { logger } from "../../log.ts";
import { type ConnectionInfo, NoTelemetry, type TelemetrySink } from "../../telemetry.ts";
import { copyBytes, openLibc } from "../../../ffi/linux/libc.ts";
import { openTun } from "../../../ffi/linux/tun.ts";
import { interfaceIndex, RouteTable } from "../../../ffi/linux/rtnetlink.ts";
import type { FlowOpening, UdpDatagram } from "../stack_types.ts";
import {
  type FromLoop,
  type LoopEvent,
  type LoopOp,
  type LoopStart,
  MAX_RECORD_PAYLOAD,
  pushOp,
  readEvents,
  Signal,
  SIGNAL_WORDS,
} from "../loop/protocol.ts";
import { createRing, RingReader, RingWriter } from "../loop/ring.ts";
import type { Duplex } from "../../../mod.ts";
import { recyclingReader } from "../../recycling_reader.ts";
import { BufferPool } from "../../buffer_pool.ts";

const log = logger("tun");
/** Bytes handed to the Worker and not yet taken by the stack, per flow, before reading pauses. */
const SEND_CREDIT = 1024 * 1024;
const EFD_NONBLOCK = 0x800;
const EFD_CLOEXEC = 0x80000;
/** Each ring's size: room for a turn's worth of events of many busy flows. */
const RING_BYTES = 8 * 1024 * 1024;
/** The largest dialer write made of gathered segments: big, yet the window reopens in steps. */
const MAX_GATHER = 256 * 1024;
/** Write buffers for dialers that release chunks (Duplex.writeReleasesChunk). */
const writeBuffers = new BufferPool(MAX_GATHER, 32);

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
}

/** Covers a dial and a request/response through a local dialer; costs nothing when idle. */
export const DEFAULT_BUSY_POLL_US = 300;

/** A running data plane. */
export interface TunDataPlane {
  name: string;
  /**
   * Routes these addresses (/32) into the TUN and answers for them there (tun_route DNS). The
   * kernel drops the routes with the TUN, also after a crash.
   */
  addHostRoutes(addresses: number[]): void;
  activeFlows(): number;
  /** Connections open per VIP, for stale-VIP reclaim. */
  isVipBusy(vip: string): boolean;
  close(): Promise<void>;
}

interface Flow {
  info: ConnectionInfo;
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
  const wakeFd = libc.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  const telemetry = options.telemetry ?? NoTelemetry;
  const flows = new Map<number, Flow>();
  const busy = new Map<string, number>();
  const opsBuffer = createRing(RING_BYTES);
  const eventsBuffer = createRing(RING_BYTES);
  const signalsBuffer = new SharedArrayBuffer(SIGNAL_WORDS * 4);
  const copy = copyBytes(libc);
  const opsRing = new RingWriter(opsBuffer, copy);
  const eventsRing = new RingReader(eventsBuffer, copy);
  const signals = new Int32Array(signalsBuffer);
  /** Operations the ring had no room for, in order; the Worker says when it has made room. */
  const opsBacklog: LoopOp[] = [];
  let wakeScheduled = false;
  const one = new Uint8Array(8);
  new DataView(one.buffer).setBigUint64(0, 1n, true);
  const wakeLoop = () => libc.write(wakeFd, one, 8n);
  const wakeLoopIfAsleep = () => {
    if (Atomics.load(signals, Signal.SLEEPING) === 1) wakeLoop();
  };
  const worker = new Worker(new URL("../loop/worker.ts", import.meta.url), { type: "module" });
  const flushBacklog = () => {
    while (opsBacklog.length > 0 && pushOp(opsRing, opsBacklog[0])) opsBacklog.shift();
    if (opsBacklog.length > 0) Atomics.store(signals, Signal.OPS_BACKLOG, 1);
  };
  /**
   * Hands `op` to the loop; one eventfd write per microtask checkpoint wakes it. Returns whether
   * the op is in the ring already (false: it waits in the backlog, its data still referenced).
   */
  const queue = (op: LoopOp): boolean => {
    if (op.op === "send" && op.data.length > MAX_RECORD_PAYLOAD) {
      let copied = true;
      for (let at = 0; at < op.data.length; at += MAX_RECORD_PAYLOAD) {
        copied = queue({ ...op, data: op.data.subarray(at, at + MAX_RECORD_PAYLOAD) }) && copied;
      }
      return copied;
    }
    const copied = opsBacklog.length === 0 && pushOp(opsRing, op);
    if (!copied) {
      opsBacklog.push(op);
      Atomics.store(signals, Signal.OPS_BACKLOG, 1);
    }
    if (!wakeScheduled) {
      wakeScheduled = true;
      queueMicrotask(() => {
        wakeScheduled = false;
        wakeLoopIfAsleep();
      });
    }
    return copied;
  };

  const finishFlow = (flow: Flow, error?: string) => {
    if (flow.closed) return;
    flow.closed = true;
    flows.delete(flow.info.id);
    const count = (busy.get(flow.info.vip) ?? 1) - 1;
    if (count <= 0) busy.delete(flow.info.vip);
    else busy.set(flow.info.vip, count);
    reportBytes(flow);
    flow.abort.abort();
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
      flows.delete(opening.id);
      queue({ op: "refuse", id: opening.id });
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
    queue({ op: "accept", id: opening.id });
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
          if (!flow.closed) queue({ op: "finish", id: flow.info.id });
          return;
        }
        if (flow.closed) return;
        flow.credit -= chunk.length;
        flow.received += chunk.length;
        // Copied into the ring at once (then its memory takes the next read), unless queued.
        if (queue({ op: "send", id: flow.info.id, data: chunk })) reader.recycle(chunk);
      }
    } catch (error) {
      if (!flow.closed) {
        log.info("connection to {vip}:{port} failed mid-stream: {message}", {
          vip: flow.info.vip,
          port: flow.info.dstPort,
          message: error instanceof Error ? error.message : String(error),
        });
        queue({ op: "abort", id: flow.info.id });
        finishFlow(flow, error instanceof Error ? error.message : String(error));
      }
    } finally {
      reader.releaseLock();
    }
  };

  /** App → dialer: bytes in order; the app's window reopens as the dialer takes them. */
  const writeToDialer = (id: number, data: Uint8Array, pooled = false) => {
    const flow = flows.get(id);
    if (!flow?.writer) return;
    flow.sent += data.length;
    flow.writeChain = flow.writeChain.then(() => flow.writer!.write(data)).then(() => {
      if (pooled) writeBuffers.give(new Uint8Array(data.buffer));
      queue({ op: "consumed", id, n: data.length });
    }, (error) => {
      if (flow.closed) return;
      queue({ op: "abort", id }); // T27e: the dialer's write side died
      finishFlow(flow, error instanceof Error ? error.message : String(error));
    });
  };

  const onEvent = (event: LoopEvent) => {
    switch (event.ev) {
      case "open":
        open(event.flow);
        return;
      case "data":
        return writeToDialer(event.id, eventsRing.keep(event.data)); // its bytes live in the ring
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
          const datagram = { ...event.datagram, payload: eventsRing.keep(event.datagram.payload) };
          options.onUdp(datagram, (reply) => queue({ op: "udp", datagram: reply }));
        }
        return;
    }
  };

  let stopped: () => void = () => {};
  const stoppedPromise = new Promise<void>((resolve) => stopped = resolve);
  let listening = true;
  /**
   * The loop writes a flow's data segment by segment; consecutive ones of a flow in one drain
   * are copied out of the ring together and written to the dialer as one chunk.
   */
  const gathered: Uint8Array[] = [];
  let gatheredId = -1;
  let gatheredBytes = 0;
  const writeGathered = () => {
    if (gathered.length === 0) return;
    const flow = flows.get(gatheredId);
    // A dialer that is done with a chunk when its write settles gets one from the pool.
    const pooled = flow?.duplex?.writeReleasesChunk === true;
    const data = pooled
      ? writeBuffers.take().subarray(0, gatheredBytes)
      : new Uint8Array(gatheredBytes);
    let at = 0;
    for (const part of gathered) {
      eventsRing.copy(data.subarray(at), part);
      at += part.length;
    }
    gathered.length = 0;
    gatheredBytes = 0;
    writeToDialer(gatheredId, data, pooled);
  };
  const visit = (event: LoopEvent) => {
    if (event.ev !== "data") {
      writeGathered();
      return onEvent(event);
    }
    if (event.id !== gatheredId || gatheredBytes + event.data.length > MAX_GATHER) {
      writeGathered(); // records are at most MAX_GATHER: one always fits
    }
    gatheredId = event.id;
    gathered.push(event.data);
    gatheredBytes += event.data.length;
  };
  /** Reads events as the Worker publishes them, until close. */
  const listen = async () => {
    while (listening) {
      const seen = Atomics.load(signals, Signal.EVENTS);
      try {
        readEvents(eventsRing, visit);
        writeGathered(); // before the drain's views are freed
      } catch (error) {
        // A bug in handling one event must not stop the relay of every other connection.
        gathered.length = 0;
        gatheredBytes = 0;
        log.error("relay event failed: {message}", {
          message: error instanceof Error ? error.stack ?? error.message : String(error),
        });
      }
      flushBacklog();
      if (Atomics.exchange(signals, Signal.EVENTS_BACKLOG, 0) === 1) wakeLoop();
      const wait = Atomics.waitAsync(signals, Signal.EVENTS, seen);
      if (wait.async) await wait.value;
    }
  };
  const ready = new Promise<void>((resolve, reject) => {
    worker.onmessage = (event: MessageEvent<FromLoop>) => {
      const msg = event.data;
      if (msg.type === "ready") {
        resolve();
      } else if (msg.type === "stopped") {
        stopped();
      } else if (msg.type === "failed") {
        log.error("packet loop failed: {message}", { message: msg.message });
        reject(new Error(msg.message));
        stopped();
      }
    };
    worker.onerror = (event) => {
      event.preventDefault();
      log.error("packet loop crashed: {message}", { message: event.message });
      reject(new Error(event.message));
      stopped();
    };
  });
  worker.postMessage(
    {
      type: "start",
      tunFd: tun.fd,
      wakeFd,
      ops: opsBuffer,
      events: eventsBuffer,
      signals: signalsBuffer,
      mtu: options.mtu,
      vnetHeader: tun.vnetHeader,
      network: options.network,
      receiveBuffer: options.receiveBuffer ?? 1024 * 1024,
      sendBuffer: options.sendBuffer ?? 1024 * 1024,
      idleTimeoutMs: options.idleTimeoutMs,
      busyPollMs: (options.busyPollMicros ?? DEFAULT_BUSY_POLL_US) / 1000,
    } satisfies LoopStart,
  );
  await ready;
  const eventLoop = listen();
  let closing: Promise<void> | undefined;
  return {
    name: tun.name,
    addHostRoutes(addresses) {
      const table = RouteTable.open(libc);
      try {
        const ifindex = interfaceIndex(tun.name, libc);
        for (const address of addresses) {
          queue({ op: "route", address, add: true }); // the stack answers first, then packets come
          table.add({ dst: address, prefix: 32, ifindex });
        }
      } finally {
        table.close();
      }
    },
    activeFlows: () => flows.size,
    isVipBusy: (vip) => (busy.get(vip) ?? 0) > 0,
    close() {
      closing ??= (async () => {
        clearInterval(bytesTimer);
        for (const flow of [...flows.values()]) finishFlow(flow, "k8stun is stopping");
        Atomics.store(signals, Signal.STOP, 1);
        wakeLoop();
        listening = false;
        Atomics.add(signals, Signal.EVENTS, 1);
        Atomics.notify(signals, Signal.EVENTS);
        await eventLoop;
        await Promise.race([stoppedPromise, new Promise((r) => setTimeout(r, 1000))]);
        worker.terminate();
        libc.close(tun.fd); // the TUN and its routes vanish with the last descriptor
        libc.close(wakeFd);
        lib.close();
      })();
      return closing;
    },
  };
}
