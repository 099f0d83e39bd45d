/**
 * The relay of TUN flows, main-thread side: each flow the stack announces goes through the
 * Router, in named steps —
 * 1. {@link FlowRelay.open}: the application's SYN arrived; dial ({@link FlowRelay#dial}).
 * 2. accept (SYN-ACK) once the dial connected, or refuse (RST → ECONNREFUSED) when it failed.
 * 3. {@link FlowRelay#pumpToApp}: dialer → application, with credit-based backpressure (reading
 *    pauses while {@link SEND_CREDIT} bytes wait in the loop, and resumes on "sent").
 * 4. {@link FlowRelay.appData}: application → dialer, in order; the application's receive window
 *    reopens as the dialer takes the bytes ("consumed").
 * 5. Ends: the application's FIN half-closes the dialer; the dialer's EOF sends FIN; a dialer
 *    error mid-stream resets the application's side, never a clean FIN on truncated data.
 *
 * The relay knows nothing of devices or Workers: operations go to the flow's {@link FlowLoop}.
 */
import {
  asDialError,
  describe,
  describeDial,
  type Router,
  type SocketAttempt,
} from "../../router.ts";
import { loopDialFailure, loopDialOf } from "./loop_dial.ts";
import { logger } from "../../log.ts";
import { type ConnectionInfo, NoTelemetry, type TelemetrySink } from "../../telemetry.ts";
import type { FlowEnd, FlowId, FlowOpening, UdpDatagram, UdpService } from "../stack_types.ts";
import type { LoopEvent, LoopOp } from "../packet_loop/protocol.ts";
import type { Duplex } from "../../../mod.ts";
import { recyclingReader } from "../../stream/recycling_reader.ts";
import { BufferPool } from "../../stream/buffer_pool.ts";
import { MAX_CHUNK } from "./loop_link.ts";
import { ConnectionLimit } from "./connection_limit.ts";
import { formatIpv4, parseIpv4Address } from "../wire/ipv4.ts";

const log = logger("tun");
/** Bytes handed to the loop and not yet taken by the stack, per flow, before reading pauses. */
export const SEND_CREDIT = 1024 * 1024;
/** The abort reason of a finished flow: given, so abort() does not build a DOMException. */
const FLOW_ENDED = new Error("the connection ended");
/** Write buffers kept for dialers that release chunks (Duplex.writeReleasesChunk). */
const POOLED_WRITE_BUFFERS = 32;
/** How often byte counts go to telemetry. */
const BYTES_REPORT_MS = 1000;

/** Where a flow's operations go: the packet loop it lives in (bridge/loop_link.ts). */
export interface FlowLoop {
  /**
   * The loop can dial and relay flows itself (the `connect` operation; docs/architecture.md,
   * "Dialed from the packet loop").
   */
  readonly dialsInLoop: boolean;
  /** Hands an operation to the loop; false when it was queued (its data still referenced). */
  send(op: LoopOp): boolean;
  /** A copy of an event payload (a view into the loop's ring) to keep. */
  keep(payload: Uint8Array): Uint8Array;
}

/** Options for {@link FlowRelay}. */
export interface FlowRelayOptions {
  router: Router;
  telemetry?: TelemetrySink;
  /** The UDP service at routed addresses (the loop refuses datagrams to its other ports). */
  udp?: UdpService;
  /**
   * Connections relayed at once; past it new ones are refused (default: 4,096, or fewer when the
   * descriptor limit is low; connection_limit.ts).
   */
  maxConnections?: number;
}

interface Flow {
  id: FlowId;
  /** Addresses and ports as the stack announced them (u32 addresses). */
  opening: FlowOpening;
  createdAt: Date;
  /** The flow as telemetry and logs show it: formatted on first use. */
  info?: ConnectionInfo;
  /** The loop the flow lives in: its operations go there, and nowhere once it is replaced. */
  loop: FlowLoop;
  duplex?: Duplex;
  writer?: WritableStreamDefaultWriter<Uint8Array>;
  /** Dialed by the loop: the socket being tried, and the ones left if it is refused. */
  socket?: SocketAttempt;
  socketsLeft?: SocketAttempt[];
  /** Counted among its VIP's open connections (it connected). */
  busy: boolean;
  writeChain: Promise<void>;
  credit: number;
  resume?: () => void;
  abort: AbortController;
  /** Bytes relayed app → dialer and dialer → app (the telemetry's `sent` and `received`). */
  bytesUp: number;
  bytesDown: number;
  reportedUp: number;
  reportedDown: number;
  closed: boolean;
}

/** A flow's {@link ConnectionInfo}, built once, when telemetry or a log first needs it. */
function infoOf(flow: Flow): ConnectionInfo {
  return flow.info ??= {
    id: flow.id,
    vip: formatIpv4(flow.opening.dstAddress),
    createdAt: flow.createdAt,
    srcIp: formatIpv4(flow.opening.srcAddress),
    srcPort: flow.opening.srcPort,
    dstPort: flow.opening.dstPort,
  };
}

/** Relays the flows of packet loops to the Router's dialers. */
export class FlowRelay {
  readonly #router: Router;
  readonly #telemetry: TelemetrySink;
  readonly #udp: UdpService | undefined;
  readonly #flows = new Map<FlowId, Flow>();
  /** Open connections per VIP (u32; stale-VIP reclaim asks). */
  readonly #busy = new Map<number, number>();
  readonly #writeBuffers = new BufferPool(MAX_CHUNK, POOLED_WRITE_BUFFERS);
  readonly #bytesTimer: ReturnType<typeof setInterval>;
  readonly #limit: ConnectionLimit;

  constructor(options: FlowRelayOptions) {
    this.#router = options.router;
    this.#telemetry = options.telemetry ?? NoTelemetry;
    this.#udp = options.udp;
    this.#limit = ConnectionLimit.fitted(options.maxConnections);
    this.#bytesTimer = setInterval(() => {
      for (const flow of this.#flows.values()) this.#reportBytes(flow);
    }, BYTES_REPORT_MS);
  }

  get activeFlows(): number {
    return this.#flows.size;
  }

  isVipBusy(vip: string): boolean {
    return (this.#busy.get(parseIpv4Address(vip)) ?? 0) > 0;
  }

  /** Dispatches an event of `loop` other than data. */
  event(event: Exclude<LoopEvent, { ev: "data" }>, loop: FlowLoop): void {
    switch (event.ev) {
      case "open":
        this.open(event.flow, loop);
        return;
      case "eof":
        return this.appEof(event.id);
      case "sent":
        return this.credit(event.id, event.n);
      case "closed":
        return this.closed(event.id, event.why);
      case "udp":
        return this.udp(event.datagram, loop);
      case "connected":
        return this.loopConnected(event.id);
      case "connect-failed":
        return this.loopConnectFailed(event.id, event.code);
      case "relayed":
        return this.loopRelayed(event.id, event.up, event.down);
      case "dns-forwarded":
        return this.#udp?.answeredInLoop?.(event.rcode, event.micros);
    }
  }

  /** Step 1: the application's SYN; the flow lives in `loop`. Dials, then accepts or refuses. */
  open(opening: FlowOpening, loop: FlowLoop): void {
    if (!this.#limit.admits(this.#flows.size)) {
      this.#telemetry.emit({
        type: "dial_error",
        reason: "connection_limit",
        target: `${formatIpv4(opening.dstAddress)}:${opening.dstPort}`,
        message: `${this.#limit.max} connections open, the most allowed`,
      });
      loop.send({ op: "refuse", id: opening.id });
      return;
    }
    const flow: Flow = {
      id: opening.id,
      opening,
      createdAt: new Date(),
      loop,
      writeChain: Promise.resolve(),
      credit: SEND_CREDIT,
      abort: new AbortController(),
      bytesUp: 0,
      bytesDown: 0,
      reportedUp: 0,
      reportedDown: 0,
      busy: false,
      closed: false,
    };
    this.#flows.set(opening.id, flow);
    this.#dial(flow, opening);
  }

  /**
   * Step 2: through the Router; connected → accept, failed → refuse. A route whose dialers
   * describe plain sockets is dialed by the loop instead ({@link #connectInLoop}).
   */
  async #dial(flow: Flow, opening: FlowOpening): Promise<void> {
    let opened;
    try {
      // The plugin API (FlowRequest) takes addresses as text.
      const request = {
        address: formatIpv4(opening.dstAddress),
        port: opening.dstPort,
        protocol: "tcp" as const,
        front: "tun" as const,
        source: { address: formatIpv4(opening.srcAddress), port: opening.srcPort },
      };
      const route = await this.#router.route(request);
      const sockets = flow.loop.dialsInLoop ? await this.#router.sockets(route) : undefined;
      if (flow.closed) return;
      if (sockets) return this.#connectInLoop(flow, sockets);
      opened = await this.#router.dial(route, flow.abort.signal, { early: true, flow: request });
    } catch (error) {
      this.#refuse(flow, asDialError(error, "router"));
      return;
    }
    if (flow.closed) {
      opened.duplex.abort(); // its loop was replaced, or the relay stopped, meanwhile
      return;
    }
    flow.duplex = opened.duplex;
    flow.writer = opened.duplex.writable.getWriter();
    flow.loop.send({ op: "accept", id: flow.id });
    this.#connected(flow, describe(opened.target), opened.dialer);
    this.#pumpToApp(flow).catch(() => {});
  }

  /** The loop dials `attempts[0]`; a refusal moves on to the next (connectFailed). */
  #connectInLoop(flow: Flow, attempts: SocketAttempt[]): void {
    const [attempt, ...rest] = attempts;
    flow.socket = attempt;
    flow.socketsLeft = rest;
    let dial;
    try {
      dial = loopDialOf(attempt.socket);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      this.#refuse(flow, { reason: "error", message: `dialer ${attempt.dialer}: ${message}` });
      return;
    }
    flow.loop.send({ op: "connect", id: flow.id, dial });
  }

  /** A dial from the loop connected: the loop accepted the flow and relays it. */
  loopConnected(id: FlowId): void {
    const flow = this.#flows.get(id);
    if (!flow?.socket || flow.closed) return;
    this.#connected(flow, describeDial(flow.socket.dialed), flow.socket.dialer);
  }

  /** A dial from the loop failed (`code`: loop_dial.ts); the next socket, or a refusal. */
  loopConnectFailed(id: FlowId, code: number): void {
    const flow = this.#flows.get(id);
    if (!flow?.socket || flow.closed) return;
    const failure = loopDialFailure(code, flow.socket.socket);
    if (failure.reason === "refused" && flow.socketsLeft!.length > 0) {
      return this.#connectInLoop(flow, flow.socketsLeft!);
    }
    this.#refuse(flow, {
      reason: failure.reason,
      message: `dialer ${flow.socket.dialer}: ${failure.message}`,
    });
  }

  /** The byte counts of a flow the loop relays. */
  loopRelayed(id: FlowId, up: number, down: number): void {
    const flow = this.#flows.get(id);
    if (!flow) return;
    flow.bytesUp = up;
    flow.bytesDown = down;
  }

  /** The flow connected (by either path): it counts for its VIP, telemetry hears of it. */
  #connected(flow: Flow, target: string, dialer: string): void {
    const vip = flow.opening.dstAddress;
    flow.busy = true;
    this.#busy.set(vip, (this.#busy.get(vip) ?? 0) + 1);
    log.debug("{vip}:{port} → {target} via {dialer}", () => ({
      vip: infoOf(flow).vip,
      port: flow.opening.dstPort,
      target,
      dialer,
    }));
    this.#telemetry.emit({ type: "connection_opened", connection: infoOf(flow) });
  }

  #refuse(flow: Flow, failure: { reason: string; message: string }): void {
    const target = `${infoOf(flow).vip}:${flow.opening.dstPort}`;
    log.info("{target} refused: {message}", { target, message: failure.message });
    this.#telemetry.emit({
      type: "dial_error",
      reason: failure.reason,
      target,
      message: failure.message,
    });
    if (flow.closed) return; // its loop was replaced meanwhile
    this.#flows.delete(flow.id);
    flow.loop.send({ op: "refuse", id: flow.id });
  }

  /** Step 3, dialer → application: read, hand to the loop while credit lasts, then wait. */
  async #pumpToApp(flow: Flow): Promise<void> {
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
          if (!flow.closed) flow.loop.send({ op: "finish", id: flow.id });
          return;
        }
        if (flow.closed) return;
        flow.credit -= chunk.length;
        flow.bytesDown += chunk.length;
        // Copied into the ring at once (then its memory takes the next read), unless queued.
        if (flow.loop.send({ op: "send", id: flow.id, data: chunk })) reader.recycle(chunk);
      }
    } catch (error) {
      if (!flow.closed) {
        const message = error instanceof Error ? error.message : String(error);
        log.info("connection to {vip}:{port} failed mid-stream: {message}", {
          vip: infoOf(flow).vip,
          port: flow.opening.dstPort,
          message,
        });
        flow.loop.send({ op: "abort", id: flow.id });
        this.#finish(flow, message, isReset(error));
      }
    }
    // The reader keeps its lock: nothing reads the stream after the pump, and a release rejects
    // the reader's promises with new errors (a stack trace each), on every connection.
  }

  /** The stack took `n` more of a flow's bytes: its credit grows, reading resumes. */
  credit(id: FlowId, n: number): void {
    const flow = this.#flows.get(id);
    if (!flow) return;
    flow.credit += n;
    if (flow.credit > 0) flow.resume?.();
  }

  /**
   * Step 4, application → dialer: `bytes` in order as the loop delivers them (`fill` copies
   * them, only during this call); the application's window reopens as the dialer takes them. A
   * dialer that is done with a chunk once its write settles gets one from the pool.
   */
  appData(id: FlowId, bytes: number, fill: (into: Uint8Array) => void): void {
    const flow = this.#flows.get(id);
    if (!flow?.writer) return;
    const pooled = flow.duplex?.writeReleasesChunk === true;
    const data = pooled ? this.#writeBuffers.take().subarray(0, bytes) : new Uint8Array(bytes);
    fill(data);
    flow.bytesUp += bytes;
    flow.writeChain = flow.writeChain.then(() => flow.writer!.write(data)).then(() => {
      if (pooled) this.#writeBuffers.give(new Uint8Array(data.buffer));
      flow.loop.send({ op: "consumed", id, n: bytes });
    }, (error) => {
      if (flow.closed) return;
      flow.loop.send({ op: "abort", id }); // the dialer's write side died: reset, never a FIN
      this.#finish(flow, error instanceof Error ? error.message : String(error), isReset(error));
    });
  }

  /** Step 5: the application's FIN half-closes the dialer, after the bytes before it. */
  appEof(id: FlowId): void {
    const flow = this.#flows.get(id);
    if (!flow?.writer) return;
    flow.writeChain = flow.writeChain.then(() => flow.writer!.close()).catch(() => {});
  }

  /** The stack closed the flow (both FINs, a reset, a timeout). */
  closed(id: FlowId, why: FlowEnd): void {
    const flow = this.#flows.get(id);
    if (flow) this.#finish(flow, why === "closed" ? undefined : why, why === "reset");
  }

  /** A datagram to a served port: to the UDP service, whose replies go back through `loop`. */
  udp(datagram: UdpDatagram, loop: FlowLoop): void {
    if (!this.#udp) return;
    const kept = { ...datagram, payload: loop.keep(datagram.payload) };
    this.#udp.handle(kept, (reply) => loop.send({ op: "udp", datagram: reply }));
  }

  /** Ends every flow with `reason` (their loop was replaced, or the relay stops). */
  resetAll(reason: string): void {
    for (const flow of [...this.#flows.values()]) this.#finish(flow, reason);
  }

  /** Ends every flow and stops reporting. */
  close(reason: string): void {
    clearInterval(this.#bytesTimer);
    this.resetAll(reason);
  }

  #finish(flow: Flow, error?: string, reset = false): void {
    if (flow.closed) return;
    flow.closed = true;
    this.#flows.delete(flow.id);
    if (flow.busy) {
      const vip = flow.opening.dstAddress;
      const count = (this.#busy.get(vip) ?? 1) - 1;
      if (count <= 0) this.#busy.delete(vip);
      else this.#busy.set(vip, count);
    }
    this.#reportBytes(flow);
    flow.abort.abort(FLOW_ENDED);
    flow.duplex?.abort();
    flow.resume?.();
    this.#telemetry.emit({
      type: "connection_closed",
      connection: infoOf(flow),
      error,
      ...(reset ? { reset } : {}),
    });
  }

  #reportBytes(flow: Flow): void {
    const sent = flow.bytesUp - flow.reportedUp;
    const received = flow.bytesDown - flow.reportedDown;
    if (sent === 0 && received === 0) return;
    flow.reportedUp = flow.bytesUp;
    flow.reportedDown = flow.bytesDown;
    this.#telemetry.emit({
      type: "bytes",
      connectionId: flow.id,
      vip: infoOf(flow).vip,
      sent,
      received,
    });
  }
}

/**
 * Whether a dialer's error is the other end resetting the connection — read as a reset, or as a
 * broken pipe on the next write — which is how a server may end it, not a failure of k8stun's.
 */
function isReset(error: unknown): boolean {
  return error instanceof Deno.errors.ConnectionReset || error instanceof Deno.errors.BrokenPipe ||
    /\breset\b/i.test(error instanceof Error ? error.message : String(error));
}
