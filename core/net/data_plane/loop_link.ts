/**
 * The main thread's end of the packet-loop Worker (protocol.ts): starts it, writes operations
 * into one shared ring and reads events from the other, with the wake-ups and backlogs the
 * protocol describes. A flow's consecutive data records of one drain reach the relay as one
 * chunk, copied out of the ring into memory the relay chooses. Reports how the loop is doing:
 * its heartbeat and counters, the faults it contained (logged once per kind), and `ended` when
 * it failed or crashed.
 */
import { logger } from "../../log.ts";
import type { TunHost, Wakeup } from "../device/tun_device.ts";
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
} from "../packet_loop/protocol.ts";
import { createRing, RingReader, RingWriter } from "../packet_loop/ring.ts";
import { SocketRegistry } from "../device/socket_registry.ts";
import type { FlowId } from "../stack_types.ts";

const log = logger("tun");

/** Logs the first fault of a kind the loop contained (the loop counts the rest). */
function reportFault(kind: string, message: string): void {
  if (kind === "foreign") {
    log.warn(
      "dropped a packet from {source}, which is not an address of this host: a machine that " +
        "routes the VIP range through this one gets no access (only this host's own traffic " +
        "reaches the cluster); further drops are counted, not logged",
      { source: message },
    );
    return;
  }
  log.error(
    "packet loop: a {kind} failed ({message}); the connection concerned was reset and the " +
      "loop goes on; further faults of this kind are counted, not logged",
    { kind, message },
  );
}
/** How long a terminated Worker is given to stop before the sockets it left are closed. */
const TERMINATION_GRACE_MS = 100;
/** Each ring's size: room for a turn's worth of events of many busy flows. */
const RING_BYTES = 8 * 1024 * 1024;
/** The most bytes of one flow delivered as one chunk: big, yet its window reopens in steps. */
export const MAX_CHUNK = MAX_RECORD_PAYLOAD;

/** What the relay does with the loop's events. */
export interface LoopHandlers {
  /**
   * Any event but data, of `link` (events may come before {@link PacketLoopLink.start} returns).
   * Payloads (UDP) are views into the ring: {@link PacketLoopLink.keep}.
   */
  event(event: Exclude<LoopEvent, { ev: "data" }>, link: PacketLoopLink): void;
  /**
   * `bytes` (≤ MAX_CHUNK) of a flow's data: `fill(into)` copies them into the start of `into`,
   * and only until this call returns.
   */
  data(id: FlowId, bytes: number, fill: (into: Uint8Array) => void): void;
}

/** Loop parameters the link does not set itself. */
export type LoopParameters = Omit<
  LoopStart,
  "type" | "wakeFd" | "ops" | "events" | "signals" | "sockets"
>;

/** A running link to the packet loop. */
export class PacketLoopLink {
  readonly #worker: Worker;
  readonly #wakeup: Wakeup;
  readonly #ops: RingWriter;
  readonly #events: RingReader;
  readonly #signals: Int32Array;
  readonly #handlers: LoopHandlers;
  readonly #host: TunHost;
  /** The sockets the loop holds: closed here if the Worker is terminated with them open. */
  readonly #sockets = new SocketRegistry();
  /** Operations the ring had no room for, in order; the Worker says when it has made room. */
  readonly #backlog: LoopOp[] = [];
  #wakeScheduled = false;
  #dialsInLoop = false;
  #listening = true;
  #closed = false;
  readonly #ended = Promise.withResolvers<string>();
  #eventLoop: Promise<void> = Promise.resolve();
  readonly #stopped = Promise.withResolvers<void>();
  /** The Worker said it stopped or failed, which it does after closing its sockets. */
  #closedItsSockets = false;
  /** Data records of the current drain not yet delivered: one flow's, consecutive. */
  readonly #gathered: Uint8Array[] = [];
  #gatheredId = -1;
  #gatheredBytes = 0;

  private constructor(host: TunHost, handlers: LoopHandlers) {
    this.#handlers = handlers;
    this.#host = host;
    this.#wakeup = host.openWakeup();
    const copy = host.copy;
    this.#ops = new RingWriter(createRing(RING_BYTES), copy);
    this.#events = new RingReader(createRing(RING_BYTES), copy);
    this.#signals = new Int32Array(new SharedArrayBuffer(SIGNAL_WORDS * 4));
    this.#worker = new Worker(new URL("../packet_loop/worker.ts", import.meta.url), {
      type: "module",
    });
  }

  /** Starts the Worker on the device `parameters.device`; resolves once it polls. */
  static async start(
    host: TunHost,
    parameters: LoopParameters,
    handlers: LoopHandlers,
  ): Promise<PacketLoopLink> {
    const link = new PacketLoopLink(host, handlers);
    try {
      await link.#start(parameters);
    } catch (error) {
      link.#worker.terminate();
      link.#wakeup.close();
      throw error;
    }
    link.#eventLoop = link.#listen();
    return link;
  }

  async #start(parameters: LoopParameters): Promise<void> {
    const ready = Promise.withResolvers<void>();
    const end = (reason: string) => {
      ready.reject(new Error(reason));
      this.#stopped.resolve();
      if (!this.#closed) this.#ended.resolve(reason);
    };
    this.#worker.onmessage = (event: MessageEvent<FromLoop>) => {
      const msg = event.data;
      if (msg.type === "ready") {
        this.#dialsInLoop = msg.sockets;
        ready.resolve();
      } else if (msg.type === "stopped") {
        this.#closedItsSockets = true;
        this.#stopped.resolve();
      } else if (msg.type === "failed") {
        this.#closedItsSockets = true;
        end(`packet loop failed: ${msg.message}`);
      } else if (msg.type === "fault") reportFault(msg.kind, msg.message);
    };
    this.#worker.onerror = (event) => {
      event.preventDefault();
      end(`packet loop crashed: ${event.message}`);
    };
    this.#worker.postMessage(
      {
        ...parameters,
        type: "start",
        wakeFd: this.#wakeup.fd,
        ops: this.#ops.buffer,
        events: this.#events.buffer,
        signals: this.#signals.buffer as SharedArrayBuffer,
        sockets: this.#sockets.buffer,
      } satisfies LoopStart,
    );
    await ready.promise;
  }

  /**
   * Why the loop ended on its own (it failed or its Worker crashed); never settles for a loop
   * that {@link close} stopped.
   */
  get ended(): Promise<string> {
    return this.#ended.promise;
  }

  /** The loop can dial and relay flows itself (the `connect` operation). */
  get dialsInLoop(): boolean {
    return this.#dialsInLoop;
  }

  /** The loop's turn counter (protocol.ts Signal.HEARTBEAT), for the watchdog. */
  get heartbeat(): number {
    return Atomics.load(this.#signals, Signal.HEARTBEAT);
  }

  /** Exceptions the loop contained so far (each reset one flow). */
  get faults(): number {
    return Atomics.load(this.#signals, Signal.FAULTS) >>> 0;
  }

  /** Packets dropped so far because their source is not an address of this host. */
  get foreignDrops(): number {
    return Atomics.load(this.#signals, Signal.FOREIGN_DROPS) >>> 0;
  }

  /** Datagrams dropped so far because too many already waited for the main thread. */
  get datagramDrops(): number {
    return Atomics.load(this.#signals, Signal.DATAGRAM_DROPS) >>> 0;
  }

  /**
   * Hands `op` to the loop; one wake-up per microtask checkpoint wakes it if it sleeps.
   * Returns whether the op is in the ring already (false: it waits in the backlog, and its data
   * is still referenced). After {@link close}, operations go nowhere (and count as taken).
   */
  send(op: LoopOp): boolean {
    if (this.#closed) return true;
    if (op.op === "send" && op.data.length > MAX_RECORD_PAYLOAD) {
      let copied = true;
      for (let at = 0; at < op.data.length; at += MAX_RECORD_PAYLOAD) {
        const part = op.data.subarray(at, at + MAX_RECORD_PAYLOAD);
        copied = this.send({ ...op, data: part }) && copied;
      }
      return copied;
    }
    const copied = this.#backlog.length === 0 && pushOp(this.#ops, op);
    if (!copied) {
      this.#backlog.push(op);
      Atomics.store(this.#signals, Signal.OPS_BACKLOG, 1);
    }
    if (!this.#wakeScheduled) {
      this.#wakeScheduled = true;
      queueMicrotask(() => {
        this.#wakeScheduled = false;
        if (Atomics.load(this.#signals, Signal.SLEEPING) === 1) this.#wake();
      });
    }
    return copied;
  }

  /** A copy of an event payload (a view into the ring) to keep. */
  keep(payload: Uint8Array): Uint8Array {
    return this.#events.keep(payload);
  }

  /** Stops the Worker (within a second) and closes the wake-up; the caller owns the device. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    Atomics.store(this.#signals, Signal.STOP, 1);
    this.#wake();
    this.#listening = false;
    Atomics.add(this.#signals, Signal.EVENTS, 1);
    Atomics.notify(this.#signals, Signal.EVENTS);
    // The timer also keeps the event loop alive for the listener's wake-up: an Atomics.waitAsync
    // resolution alone does not, once the Worker is gone.
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.all([this.#eventLoop, this.#stopped.promise]),
      new Promise((resolve) => timer = setTimeout(resolve, 1000)),
    ]);
    clearTimeout(timer);
    this.#worker.terminate();
    if (!this.#closedItsSockets) {
      // Terminated mid-turn (or crashed): its sockets are still open. Once its thread has surely
      // stopped (termination interrupts JavaScript within moments), they are closed here.
      await new Promise((resolve) => setTimeout(resolve, TERMINATION_GRACE_MS));
      this.#sockets.drain((fd) => this.#host.closeDescriptor(fd));
    }
    this.#wakeup.close();
  }

  #wake(): void {
    this.#wakeup.signal();
  }

  /** Reads events as the Worker publishes them, until close. */
  async #listen(): Promise<void> {
    while (this.#listening) {
      const seen = Atomics.load(this.#signals, Signal.EVENTS);
      try {
        // The gathered views are delivered before the drain frees their records.
        readEvents(this.#events, (event) => this.#visit(event), () => this.#deliverGathered());
      } catch (error) {
        // A bug in handling one event must not stop the relay of every other connection.
        this.#gathered.length = 0;
        this.#gatheredBytes = 0;
        log.error("relay event failed: {message}", {
          message: error instanceof Error ? error.stack ?? error.message : String(error),
        });
      }
      while (this.#backlog.length > 0 && pushOp(this.#ops, this.#backlog[0])) this.#backlog.shift();
      if (this.#backlog.length > 0) Atomics.store(this.#signals, Signal.OPS_BACKLOG, 1);
      if (Atomics.exchange(this.#signals, Signal.EVENTS_BACKLOG, 0) === 1) this.#wake();
      const wait = Atomics.waitAsync(this.#signals, Signal.EVENTS, seen);
      if (wait.async) await wait.value;
    }
  }

  #visit(event: LoopEvent): void {
    if (event.ev !== "data") {
      this.#deliverGathered();
      return this.#handlers.event(event, this);
    }
    // The loop writes data segment by segment: a flow's consecutive records go out as one.
    if (event.id !== this.#gatheredId || this.#gatheredBytes + event.data.length > MAX_CHUNK) {
      this.#deliverGathered(); // records are at most MAX_CHUNK: one always fits
    }
    this.#gatheredId = event.id;
    this.#gathered.push(event.data);
    this.#gatheredBytes += event.data.length;
  }

  #deliverGathered(): void {
    if (this.#gathered.length === 0) return;
    const parts = this.#gathered;
    const bytes = this.#gatheredBytes;
    try {
      this.#handlers.data(this.#gatheredId, bytes, (into) => {
        let at = 0;
        for (const part of parts) {
          this.#events.copy(into.subarray(at), part);
          at += part.length;
        }
      });
    } finally {
      parts.length = 0;
      this.#gatheredBytes = 0;
    }
  }
}
