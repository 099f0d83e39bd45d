/**
 * The main thread's end of the packet-loop Worker (protocol.ts): starts it, writes operations
 * into one shared ring and reads events from the other, with the wake-ups and backlogs the
 * protocol describes. A flow's consecutive data records of one drain reach the relay as one
 * chunk, copied out of the ring into memory the relay chooses.
 */
import { logger } from "../../log.ts";
import { copyBytes, type Libc } from "../../../ffi/linux/libc.ts";
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
import type { FlowId } from "../stack_types.ts";

const log = logger("tun");
const EFD_NONBLOCK = 0x800;
const EFD_CLOEXEC = 0x80000;
/** Each ring's size: room for a turn's worth of events of many busy flows. */
const RING_BYTES = 8 * 1024 * 1024;
/** The most bytes of one flow delivered as one chunk: big, yet its window reopens in steps. */
export const MAX_CHUNK = MAX_RECORD_PAYLOAD;

/** What the relay does with the loop's events. */
export interface LoopHandlers {
  /** Any event but data. Payloads (UDP) are views into the ring: {@link PacketLoopLink.keep}. */
  event(event: Exclude<LoopEvent, { ev: "data" }>): void;
  /**
   * `bytes` (≤ MAX_CHUNK) of a flow's data: `fill(into)` copies them into the start of `into`,
   * and only until this call returns.
   */
  data(id: FlowId, bytes: number, fill: (into: Uint8Array) => void): void;
}

/** Loop parameters the link does not set itself. */
export type LoopParameters = Omit<LoopStart, "type" | "wakeFd" | "ops" | "events" | "signals">;

/** A running link to the packet loop. */
export class PacketLoopLink {
  readonly #libc: Libc;
  readonly #worker: Worker;
  readonly #wakeFd: number;
  readonly #ops: RingWriter;
  readonly #events: RingReader;
  readonly #signals: Int32Array;
  readonly #handlers: LoopHandlers;
  /** Operations the ring had no room for, in order; the Worker says when it has made room. */
  readonly #backlog: LoopOp[] = [];
  /** What a wake-up writes to the eventfd: a u64 of 1. */
  readonly #one = new Uint8Array(new BigUint64Array([1n]).buffer);
  #wakeScheduled = false;
  #listening = true;
  #eventLoop: Promise<void> = Promise.resolve();
  readonly #stopped = Promise.withResolvers<void>();
  /** Data records of the current drain not yet delivered: one flow's, consecutive. */
  readonly #gathered: Uint8Array[] = [];
  #gatheredId = -1;
  #gatheredBytes = 0;

  private constructor(libc: Libc, handlers: LoopHandlers) {
    this.#libc = libc;
    this.#handlers = handlers;
    this.#wakeFd = libc.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    const copy = copyBytes(libc);
    this.#ops = new RingWriter(createRing(RING_BYTES), copy);
    this.#events = new RingReader(createRing(RING_BYTES), copy);
    this.#signals = new Int32Array(new SharedArrayBuffer(SIGNAL_WORDS * 4));
    this.#worker = new Worker(new URL("../loop/worker.ts", import.meta.url), { type: "module" });
  }

  /** Starts the Worker on the TUN; resolves once it polls. */
  static async start(
    libc: Libc,
    parameters: LoopParameters,
    handlers: LoopHandlers,
  ): Promise<PacketLoopLink> {
    const link = new PacketLoopLink(libc, handlers);
    try {
      await link.#start(parameters);
    } catch (error) {
      link.#worker.terminate();
      libc.close(link.#wakeFd);
      throw error;
    }
    link.#eventLoop = link.#listen();
    return link;
  }

  async #start(parameters: LoopParameters): Promise<void> {
    const ready = Promise.withResolvers<void>();
    this.#worker.onmessage = (event: MessageEvent<FromLoop>) => {
      const msg = event.data;
      if (msg.type === "ready") ready.resolve();
      else if (msg.type === "stopped") this.#stopped.resolve();
      else if (msg.type === "failed") {
        log.error("packet loop failed: {message}", { message: msg.message });
        ready.reject(new Error(msg.message));
        this.#stopped.resolve();
      }
    };
    this.#worker.onerror = (event) => {
      event.preventDefault();
      log.error("packet loop crashed: {message}", { message: event.message });
      ready.reject(new Error(event.message));
      this.#stopped.resolve();
    };
    this.#worker.postMessage(
      {
        ...parameters,
        type: "start",
        wakeFd: this.#wakeFd,
        ops: this.#ops.buffer,
        events: this.#events.buffer,
        signals: this.#signals.buffer as SharedArrayBuffer,
      } satisfies LoopStart,
    );
    await ready.promise;
  }

  /**
   * Hands `op` to the loop; one eventfd write per microtask checkpoint wakes it if it sleeps.
   * Returns whether the op is in the ring already (false: it waits in the backlog, and its data
   * is still referenced).
   */
  send(op: LoopOp): boolean {
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

  /** Stops the Worker (within a second) and closes the eventfd; the caller owns the TUN. */
  async close(): Promise<void> {
    Atomics.store(this.#signals, Signal.STOP, 1);
    this.#wake();
    this.#listening = false;
    Atomics.add(this.#signals, Signal.EVENTS, 1);
    Atomics.notify(this.#signals, Signal.EVENTS);
    await this.#eventLoop;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      this.#stopped.promise,
      new Promise((resolve) => timer = setTimeout(resolve, 1000)),
    ]);
    clearTimeout(timer);
    this.#worker.terminate();
    this.#libc.close(this.#wakeFd);
  }

  #wake(): void {
    this.#libc.write(this.#wakeFd, this.#one, 8n);
  }

  /** Reads events as the Worker publishes them, until close. */
  async #listen(): Promise<void> {
    while (this.#listening) {
      const seen = Atomics.load(this.#signals, Signal.EVENTS);
      try {
        readEvents(this.#events, (event) => this.#visit(event));
        this.#deliverGathered(); // before the drain's views are freed
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
      return this.#handlers.event(event);
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
