/**
 * Flows the packet loop dials and relays itself (docs/architecture.md, "Dialed from the packet
 * loop"): the main thread routes the flow and names a TCP connection (`connect` operation); from
 * then on the loop's own non-blocking socket carries it, and the application's segments and the
 * socket's bytes meet in this thread — no stream objects, no hand-off to the main thread per
 * chunk. Each flow goes
 * connecting → (SOCKS5 replies) → open:
 * - connected (and the proxy's success reply read): the stack accepts the flow; "connected" tells
 *   the main thread. A failure before that closes the socket and reports "connect-failed" with
 *   its cause; the flow waits for the main thread's next `connect` or its refusal.
 * - app → socket: a turn's deliveries are queued and written together when the turn's packets
 *   are in ({@link flush}); what the socket cannot take waits here and the app's window stays
 *   closed for it (`consumed` only for what was written).
 * - socket → app: read while the stack takes it; what it cannot take waits here and the socket
 *   is not read until the stack has room (flowWritable).
 * - the app's FIN shuts down the socket's sending side after the bytes before it; the socket's
 *   end sends FIN after the bytes before it; a reset or error either way resets the other side.
 * Stack calls a delivery would make re-entrantly (window updates, resets) wait for {@link flush}.
 */
import { type LoopSockets, SocketError } from "../device/loop_sockets.ts";
import { Socks5ReplyParser } from "../wire/socks5_client.ts";
import { ByteQueue } from "./byte_queue.ts";
import type { FlowId } from "../stack_types.ts";
import { type LoopDial, type LoopEvent, SOCKS5_REPLY_BASE } from "./protocol.ts";

/** What the relay does to the stack's flows. */
export interface RelayedStack {
  accept(id: FlowId, now: number): void;
  /** Takes what fits of `data` (copied); returns how much. */
  send(id: FlowId, data: Uint8Array, now: number): number;
  consumed(id: FlowId, n: number, now: number): void;
  finish(id: FlowId, now: number): void;
}

/** How long a connect, with the SOCKS5 replies, may take before the dial fails. */
export const CONNECT_TIMEOUT_MS = 10_000;
/** A delivery this large goes to the socket at once instead of being queued for the turn. */
const DIRECT_WRITE_BYTES = 16 * 1024;
/** One read from a socket. */
const READ_SIZE = 64 * 1024;
/** Bytes read from one socket per turn, so one busy flow cannot hold up the others. */
const READ_BUDGET = 256 * 1024;
/** How often the byte counts of open flows go to the main thread. */
const REPORT_MS = 1000;
/** A socket closed by its peer while connecting or before the SOCKS5 replies. */
const SOCKS5_GENERAL_FAILURE = SOCKS5_REPLY_BASE + 1;

type Phase = "connecting" | "socks5" | "open";

interface Relayed {
  id: FlowId;
  fd: number;
  phase: Phase;
  /** Connecting and SOCKS5 phases: when the dial fails. */
  deadline: number;
  socks5?: { request: Uint8Array; replies: Socks5ReplyParser };
  /** The app's bytes the socket has not taken yet, in order. */
  toSocket: ByteQueue;
  /** Bytes read from the socket that the stack has not taken yet. */
  toApp?: Uint8Array;
  /** The app's FIN arrived; the socket's sending side shuts once `toSocket` is empty. */
  appEnded: boolean;
  /** The socket's end was read; FIN goes to the app once `toApp` is empty. */
  socketEnded: boolean;
  up: number;
  down: number;
  reportedUp: number;
  reportedDown: number;
}

export class SocketRelay {
  readonly #sockets: LoopSockets;
  readonly #stack: RelayedStack;
  readonly #emit: (event: LoopEvent) => void;
  /**
   * Resets a flow towards the app and tells the main thread it closed; `byPeer`: the far end
   * reset it (a way servers end connections), else the socket failed.
   */
  readonly #reset: (id: FlowId, byPeer: boolean) => void;
  /** Reports a failure the relay contained (it reset the flow concerned). */
  readonly #fault: (kind: string, error: unknown) => void;
  readonly #byId = new Map<FlowId, Relayed>();
  readonly #byFd = new Map<number, Relayed>();
  readonly #buffer = new Uint8Array(READ_SIZE);
  /** Flows with bytes (or a FIN) for their socket since the last {@link flush}. */
  readonly #dirty = new Set<Relayed>();
  /** Window updates owed to the stack, applied by {@link flush}. */
  readonly #consumed = new Map<FlowId, number>();
  /** Flows to reset by {@link flush}, and whether their peer reset them. */
  readonly #failed = new Map<FlowId, boolean>();
  #nextReport = 0;

  constructor(
    sockets: LoopSockets,
    stack: RelayedStack,
    emit: (event: LoopEvent) => void,
    reset: (id: FlowId, byPeer: boolean) => void,
    fault: (kind: string, error: unknown) => void = () => {},
  ) {
    this.#fault = fault;
    this.#sockets = sockets;
    this.#stack = stack;
    this.#emit = emit;
    this.#reset = reset;
  }

  /** Whether the relay carries flow `id` (its data and ends come here, not to the main thread). */
  has(id: FlowId): boolean {
    return this.#byId.has(id);
  }

  get size(): number {
    return this.#byId.size;
  }

  /** The main thread's `connect`: opens the socket for `id`. */
  connect(id: FlowId, dial: LoopDial, now: number): void {
    this.forget(id);
    const fd = this.#sockets.connect(dial.address, dial.port);
    if (fd < 0) {
      this.#emit({ ev: "connect-failed", id, code: -fd });
      return;
    }
    const flow: Relayed = {
      id,
      fd,
      phase: "connecting",
      deadline: now + CONNECT_TIMEOUT_MS,
      socks5: dial.socks5 && { request: dial.socks5, replies: new Socks5ReplyParser() },
      toSocket: new ByteQueue(),
      appEnded: false,
      socketEnded: false,
      up: 0,
      down: 0,
      reportedUp: 0,
      reportedDown: 0,
    };
    this.#byId.set(id, flow);
    this.#byFd.set(fd, flow);
    this.#sockets.watch(fd, false, true);
  }

  /**
   * The app's in-order bytes (a view valid during the call), for the socket at {@link flush} —
   * or at once when they are many and nothing waits before them (no copy for a super-packet).
   */
  data(id: FlowId, bytes: Uint8Array): void {
    const flow = this.#byId.get(id);
    if (!flow) return;
    flow.up += bytes.length;
    let from = 0;
    if (bytes.length >= DIRECT_WRITE_BYTES && flow.toSocket.length === 0 && flow.phase === "open") {
      from = Math.max(0, this.#write(flow, bytes));
      if (from > 0) this.#consume(id, from);
    }
    if (from < bytes.length) flow.toSocket.append(bytes.subarray(from));
    this.#dirty.add(flow);
  }

  /** The app's FIN, after all its bytes: the socket's sending side shuts after them. */
  appEnded(id: FlowId): void {
    const flow = this.#byId.get(id);
    if (!flow || flow.appEnded) return;
    flow.appEnded = true;
    this.#dirty.add(flow);
  }

  /** The stack has room again for bytes towards the app. */
  writable(id: FlowId, now: number): void {
    const flow = this.#byId.get(id);
    if (flow?.toApp && this.#toApp(flow, flow.toApp, now)) this.#watch(flow);
  }

  /** The stack closed the flow: the socket goes, after the last byte counts. */
  closed(id: FlowId): void {
    const flow = this.#byId.get(id);
    if (!flow) return;
    this.#report(flow);
    this.#drop(flow);
  }

  /** Closes a flow's socket without a word (the main thread ended the flow itself). */
  forget(id: FlowId): void {
    const flow = this.#byId.get(id);
    if (flow) this.#drop(flow);
  }

  /**
   * Serves the sockets that are ready, fails dials past their deadline and reports byte counts;
   * returns the bytes moved. A ready socket that is not a flow's goes to `others` (the loop's
   * DNS sockets share the wait), which returns the bytes it moved.
   */
  service(now: number, others?: (fd: number, now: number) => number): number {
    let moved = 0;
    this.#sockets.ready((fd, readable, writable) => {
      const flow = this.#byFd.get(fd);
      if (!flow) {
        if (others) moved += others(fd, now);
        return;
      }
      this.#contained(flow, () => moved += this.#serve(flow, readable, writable, now));
    });
    if (now >= this.#nextReport) {
      this.#nextReport = now + REPORT_MS;
      for (const flow of this.#byId.values()) {
        if (flow.phase !== "open" && now >= flow.deadline) {
          this.#dialFailed(flow, SocketError.TIMED_OUT);
        } else {
          this.#report(flow);
        }
      }
    }
    return moved + this.flush(now);
  }

  /**
   * Writes what the app sent since the last flush, then applies the window updates and resets
   * that deliveries queued. Returns the bytes written.
   */
  flush(now: number): number {
    let written = 0;
    for (const flow of this.#dirty) {
      if (!this.#byId.has(flow.id) || flow.phase !== "open") continue;
      this.#contained(flow, () => {
        written += this.#flushToSocket(flow);
        if (this.#byId.has(flow.id)) this.#watch(flow);
      });
    }
    this.#dirty.clear();
    for (const [id, n] of this.#consumed) this.#stack.consumed(id, n, now);
    this.#consumed.clear();
    for (const [id, byPeer] of this.#failed) {
      const flow = this.#byId.get(id);
      if (flow) {
        this.#report(flow);
        this.#drop(flow);
      }
      this.#reset(id, byPeer);
    }
    this.#failed.clear();
    return written;
  }

  /**
   * Runs one flow's step; a throw (a bug, or a socket call the OS refused) costs that flow only:
   * it is reset at the flush, and the failure is reported.
   */
  #contained(flow: Relayed, step: () => void): void {
    try {
      step();
    } catch (error) {
      this.#fault("relayed socket", error);
      this.#failed.set(flow.id, false);
    }
  }

  /** Closes every socket (the loop ends). */
  closeAll(): void {
    for (const flow of [...this.#byId.values()]) this.#drop(flow);
  }

  #serve(flow: Relayed, readable: boolean, writable: boolean, now: number): number {
    switch (flow.phase) {
      case "connecting": {
        if (!writable) return 0;
        const result = this.#sockets.connectResult(flow.fd);
        if (result < 0) return this.#dialFailed(flow, result), 0;
        if (!flow.socks5) return this.#opened(flow, now), 0;
        // A fresh socket's send buffer takes the few hundred bytes of a request whole.
        if (this.#sockets.write(flow.fd, flow.socks5.request) !== flow.socks5.request.length) {
          return this.#dialFailed(flow, -SOCKS5_GENERAL_FAILURE), 0;
        }
        flow.phase = "socks5";
        this.#sockets.watch(flow.fd, true, false);
        return 0;
      }
      case "socks5": {
        if (!readable) return 0;
        const n = this.#sockets.read(flow.fd, this.#buffer);
        if (n === SocketError.WOULD_BLOCK) return 0;
        if (n <= 0) return this.#dialFailed(flow, -SOCKS5_GENERAL_FAILURE), 0;
        const outcome = flow.socks5!.replies.push(this.#buffer.subarray(0, n));
        if (outcome.kind === "more") return 0;
        if (outcome.kind === "failed") {
          return this.#dialFailed(flow, -(SOCKS5_REPLY_BASE + outcome.reply)), 0;
        }
        this.#opened(flow, now);
        if (outcome.rest.length > 0 && this.#byId.has(flow.id)) {
          flow.down += outcome.rest.length;
          this.#toApp(flow, outcome.rest, now);
          this.#watch(flow);
        }
        return n;
      }
      case "open": {
        let moved = 0;
        if (writable && flow.toSocket.length > 0) this.#dirty.add(flow);
        if (readable && !flow.toApp && !flow.socketEnded) moved += this.#readToApp(flow, now);
        if (this.#byId.has(flow.id)) this.#watch(flow);
        return moved;
      }
    }
  }

  /** Connected (and the proxy said so): the stack accepts, its held bytes come to data(). */
  #opened(flow: Relayed, now: number): void {
    flow.phase = "open";
    flow.socks5 = undefined;
    this.#emit({ ev: "connected", id: flow.id });
    this.#stack.accept(flow.id, now);
    if (this.#byId.has(flow.id)) this.#watch(flow);
  }

  /** The dial failed: the socket goes, and the main thread decides (`code` is `-cause`). */
  #dialFailed(flow: Relayed, code: number): void {
    this.#drop(flow);
    this.#emit({ ev: "connect-failed", id: flow.id, code: -code });
  }

  /** Reads what the socket has while the stack takes it. */
  #readToApp(flow: Relayed, now: number): number {
    let moved = 0;
    while (moved < READ_BUDGET) {
      const n = this.#sockets.read(flow.fd, this.#buffer);
      if (n === SocketError.WOULD_BLOCK) break;
      if (n < 0) {
        this.#fail(flow, n);
        break;
      }
      if (n === 0) {
        flow.socketEnded = true;
        this.#stack.finish(flow.id, now);
        break;
      }
      moved += n;
      flow.down += n;
      if (!this.#toApp(flow, this.#buffer.subarray(0, n), now)) break;
    }
    return moved;
  }

  /** Hands `bytes` to the stack; keeps (a copy of) what it cannot take. True when all went. */
  #toApp(flow: Relayed, bytes: Uint8Array, now: number): boolean {
    const taken = this.#stack.send(flow.id, bytes, now);
    if (taken < bytes.length) {
      flow.toApp = bytes === flow.toApp ? bytes.subarray(taken) : bytes.slice(taken);
      return false;
    }
    flow.toApp = undefined;
    if (flow.socketEnded) this.#stack.finish(flow.id, now);
    return true;
  }

  /** Writes the app's waiting bytes; the app's window reopens by what went. */
  #flushToSocket(flow: Relayed): number {
    let moved = 0;
    while (flow.toSocket.length > 0) {
      const n = this.#write(flow, flow.toSocket.view());
      if (n <= 0) break;
      moved += n;
      this.#consume(flow.id, n);
      flow.toSocket.consume(n);
    }
    if (flow.toSocket.length === 0 && flow.appEnded) this.#sockets.shutdownWrite(flow.fd);
    return moved;
  }

  /** One write: bytes taken (0 when full), or -1 after failing the flow. */
  #write(flow: Relayed, bytes: Uint8Array): number {
    const n = this.#sockets.write(flow.fd, bytes);
    if (n >= 0) return n;
    if (n === SocketError.WOULD_BLOCK) return 0;
    this.#fail(flow, n);
    return -1;
  }

  /** A socket error mid-stream: the app is reset (at the next flush), never sent a clean FIN. */
  #fail(flow: Relayed, error: number): void {
    const byPeer = error === SocketError.CONNECTION_RESET || error === SocketError.BROKEN_PIPE;
    this.#failed.set(flow.id, byPeer);
  }

  #consume(id: FlowId, n: number): void {
    this.#consumed.set(id, (this.#consumed.get(id) ?? 0) + n);
  }

  /** Watches the socket for what the flow can use now. */
  #watch(flow: Relayed): void {
    if (flow.phase !== "open") return;
    const readable = !flow.toApp && !flow.socketEnded;
    this.#sockets.watch(flow.fd, readable, flow.toSocket.length > 0);
  }

  #report(flow: Relayed): void {
    if (flow.up === flow.reportedUp && flow.down === flow.reportedDown) return;
    flow.reportedUp = flow.up;
    flow.reportedDown = flow.down;
    this.#emit({ ev: "relayed", id: flow.id, up: flow.up, down: flow.down });
  }

  #drop(flow: Relayed): void {
    this.#byId.delete(flow.id);
    this.#byFd.delete(flow.fd);
    this.#sockets.close(flow.fd);
  }
}
