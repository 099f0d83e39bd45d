/**
 * One TCP connection that the application's kernel opened towards a routed address; k8stun is
 * the passive side. The state machine of RFC 9293 §3.10 (docs/tcp.md): it owns the state, the
 * timers (timers.ts) and the two halves, receiver.ts and sender.ts, and hands the stack complete
 * segments ({@link SegmentOut}) and relay events through {@link SegmentSink}.
 */
import { ACK, FIN, RST, SYN, type TcpOut, type TcpRepr } from "../wire/tcp.ts";
import type { SendBuffer } from "./send_buffer.ts";
import type { CopyBytes } from "../copy.ts";
import { seqAdd } from "./seq.ts";
import { ConnectionTimers } from "./timers.ts";
import { Receiver, unscaledWindow } from "./receiver.ts";
import { Sender } from "./sender.ts";

/** States used (docs/tcp.md §8); LISTEN is implicit and SYN-SENT never occurs. */
export type TcpState =
  | "SYN_RECEIVED"
  | "ESTABLISHED"
  | "CLOSE_WAIT"
  | "LAST_ACK"
  | "FIN_WAIT_1"
  | "FIN_WAIT_2"
  | "CLOSING"
  | "TIME_WAIT"
  | "CLOSED";

/**
 * A complete segment to transmit: every header field is filled in, and the payload (if any) is a
 * range of the connection's send buffer, which the stack copies into its output packet.
 */
export interface SegmentOut {
  header: TcpOut;
  payload?: { buffer: SendBuffer; offset: number; length: number };
  /** The size a device with segment offload cuts a longer payload into (docs/tcp.md §2.7). */
  mss?: number;
}

/** Where a connection sends segments and relay events. */
export interface SegmentSink {
  /** Transmits a segment; the stack only adds the IPv4 header (and the virtio one). */
  transmit(conn: TcpConnection, segment: SegmentOut): void;
  data(conn: TcpConnection, payload: Uint8Array): void;
  eof(conn: TcpConnection): void;
  writable(conn: TcpConnection): void;
  closed(conn: TcpConnection, why: "closed" | "reset" | "timeout" | "aborted"): void;
}

const SYNACK_TRIES = 5; // docs/tcp.md §3.2
const TIME_WAIT_MS = 2000; // short TIME-WAIT (docs/tcp.md §6.3)
const FIN_WAIT_2_MS = 60_000; // docs/tcp.md §6.8
/**
 * At most one challenge ACK per connection this often (RFC 5961 §7 asks for a throttle; Linux
 * uses 500 ms per socket, net.ipv4.tcp_invalid_ratelimit): forged segments cannot turn the stack
 * into an ACK reflector.
 */
const CHALLENGE_ACK_INTERVAL_MS = 500;
/**
 * An idle connection is closed the way a server closes one: a FIN, so the app reads EOF. An app
 * that does not close its side within this grace is reset.
 */
const IDLE_CLOSE_GRACE_MS = 5000;

/** Per-connection parameters from the stack. */
export interface ConnectionConfig {
  mss: number;
  /** The device cuts large segments (TSO): emit up to 64 KiB at once, not one MSS. */
  segmentOffload?: boolean;
  receiveBuffer: number;
  sendBuffer: number;
  idleTimeoutMs: number;
  /** How bytes are copied into the send buffer (see StackOptions.copy). */
  copy?: CopyBytes;
}

/** One end of a connection: an IPv4 address (host order) and a port. */
export interface Endpoint {
  address: number;
  port: number;
}

/** What a connection is created from (the stack fills it on a SYN, or an ACK with a cookie). */
export interface ConnectionOptions {
  /** The flow id the relay knows the connection by. */
  id: number;
  /** Our end: the routed address and port the application dialed. */
  local: Endpoint;
  /** The application's end. */
  remote: Endpoint;
  /** The SYN that opened it: ISN, window, MSS and window-scale options. */
  syn: TcpRepr;
  config: ConnectionConfig;
  sink: SegmentSink;
  now: number;
  /** The ISN of a SYN-ACK already sent statelessly (syn_cookie.ts), if it was. */
  synCookie?: number;
}

/** A TCP connection. */
export class TcpConnection {
  /** The flow id the relay knows the connection by. */
  readonly id: number;
  readonly local: Endpoint;
  readonly remote: Endpoint;
  readonly #config: ConnectionConfig;
  readonly #sink: SegmentSink;
  #state: TcpState = "SYN_RECEIVED";
  /** The owner's dial succeeded (`accept`): the relay takes data and events from now on. */
  accepted = false;
  /** The app got our SYN-ACK: it knows of this connection (and a refusal is a reset). */
  #synAckSent = false;
  /** Every deadline of this connection (timers.ts). */
  readonly #timers = new ConnectionTimers();
  /** The receive half (receiver.ts). */
  readonly #rcv: Receiver;
  /** The send half (sender.ts). */
  readonly #snd: Sender;
  /**
   * In-order bytes received before the dial succeeded, for the relay once it does: only a
   * connection opened from a SYN cookie, whose handshake completes first, has any. Bounded by
   * the receive window (they count in the receiver's `buffered`).
   */
  #held: Uint8Array[] = [];
  /** An ACK is owed, sent at the end of the stack's turn unless data carries it (docs/tcp.md §4.6). */
  #ackPending = false;
  /** When the last challenge ACK went out (CHALLENGE_ACK_INTERVAL_MS). */
  #challengeAckAt = -Infinity;

  constructor(options: ConnectionOptions) {
    const { syn, config, now, synCookie } = options;
    this.id = options.id;
    this.local = options.local;
    this.remote = options.remote;
    this.#config = config;
    this.#sink = options.sink;
    this.#rcv = new Receiver({
      syn,
      receiveBuffer: config.receiveBuffer,
      mss: config.mss,
      deliver: (part) => {
        if (this.accepted) this.#sink.data(this, part);
        else this.#held.push(part.slice()); // `part` views the packet; the dial is still running
      },
    });
    this.#snd = new Sender({
      syn,
      mss: config.mss,
      segmentOffload: config.segmentOffload === true,
      sendBuffer: config.sendBuffer,
      copy: config.copy,
      synCookie,
      timers: this.#timers,
      emit: (flags, seq, offset, length) => this.#emit(flags, seq, offset, length),
      writable: () => this.#sink.writable(this),
    });
    if (synCookie !== undefined) {
      // The stateless SYN-ACK (syn_cookie.ts) promised the unscaled window.
      this.#synAckSent = true;
      this.#rcv.advertised(unscaledWindow(this.#rcv.cap));
    }
    this.#touch(now);
  }

  /** The state (docs/tcp.md §8). Every transition goes through `#setState`. */
  get state(): TcpState {
    return this.#state;
  }

  /**
   * Enters `next` and arms what it needs: TIME-WAIT its short timer (docs/tcp.md §6.3),
   * FIN-WAIT-2 its bound (docs/tcp.md §6.8); CLOSED frees every buffer.
   */
  #setState(next: TcpState, now = 0): void {
    this.#state = next;
    switch (next) {
      case "TIME_WAIT":
        this.#timers.arm("close", now + TIME_WAIT_MS);
        break;
      case "FIN_WAIT_2":
        this.#timers.arm("close", now + FIN_WAIT_2_MS);
        break;
      case "CLOSED":
        this.#snd.buffer.clear();
        this.#rcv.clear();
        this.#held = [];
        break;
    }
  }

  /** Whether an incoming SYN is a retransmission of this connection's SYN (docs/tcp.md §3.2). */
  isSameSyn(syn: TcpRepr): boolean {
    return syn.seq === this.#rcv.irs;
  }

  /**
   * The dial succeeded: send the SYN-ACK (docs/tcp.md §3.1). A connection opened from a SYN
   * cookie completed its handshake before the dial: the relay gets what the app sent meanwhile.
   */
  accept(now: number): void {
    if (this.accepted || this.#state === "CLOSED") return;
    this.accepted = true;
    if (!this.#synAckSent) {
      this.#sendSynAck(now);
      return;
    }
    const held = this.#held;
    this.#held = [];
    for (const part of held) this.#sink.data(this, part);
    if (this.#rcv.finReceived) this.#sink.eof(this);
  }

  /**
   * Answers the SYN before the dial does (a destination that accepted recently, docs/tcp.md
   * §3.1): the app is connected at once, its data waits here until accept(), and a refusal
   * resets it.
   */
  answerBeforeDial(now: number): void {
    if (!this.accepted && !this.#synAckSent && this.#state === "SYN_RECEIVED") {
      this.#sendSynAck(now);
    }
  }

  #sendSynAck(now: number): void {
    this.#synAckSent = true;
    this.#snd.sendSynAck(now);
  }

  /** Retransmitted SYN: resend the SYN-ACK if one was sent (docs/tcp.md §3.2). */
  duplicateSyn(now: number): void {
    if (this.#synAckSent && this.#state === "SYN_RECEIVED") this.#sendSynAck(now);
  }

  #touch(now: number): void {
    if (this.#config.idleTimeoutMs > 0) {
      this.#timers.arm("idle", now + this.#config.idleTimeoutMs);
    }
  }

  /** Processes one segment (RFC 9293 §3.10.7.4). */
  onSegment(seg: TcpRepr, packet: Uint8Array, now: number): void {
    this.#touch(now);
    const length = seg.payloadLength + (seg.flags & SYN ? 1 : 0) + (seg.flags & FIN ? 1 : 0);
    if (!this.#synAckSent) return; // dial pending: the app has had no answer yet
    // 1. Sequence check (docs/tcp.md §4.1): unacceptable → ACK (unless RST) and drop.
    if (!this.#rcv.acceptable(seg.seq, length)) {
      if (!(seg.flags & RST)) {
        // docs/tcp.md §4.2: still learn from the ACK and window of a segment we cannot take.
        if (
          seg.flags & ACK && this.#state !== "SYN_RECEIVED" && this.#snd.ackAcceptable(seg.ack)
        ) {
          this.#processAck(seg, now);
        }
        this.#sendAck();
      }
      return;
    }
    // 2. RST (RFC 5961 §3.2): exact → abort; in window → challenge ACK.
    if (seg.flags & RST) {
      if (seg.seq === this.#rcv.nxt) this.#terminate("reset");
      else this.#challengeAck(now);
      return;
    }
    // 4. SYN in a synchronized state → challenge ACK (RFC 5961 §4.2).
    if (seg.flags & SYN) {
      this.#challengeAck(now);
      return;
    }
    // 5. ACK
    if (!(seg.flags & ACK)) return;
    if (this.#state === "SYN_RECEIVED") {
      if (!this.#snd.acksSynAck(seg.ack)) {
        this.#emit(RST, seg.ack, 0, 0);
        return;
      }
      this.#setState("ESTABLISHED", now); // docs/tcp.md §3.3: any acceptable ACK completes it
      this.#snd.synAcked(seg);
    } else if (!this.#snd.ackAcceptable(seg.ack)) {
      // RFC 5961 §5.2: neither the ACK nor the data of this segment is believed.
      this.#challengeAck(now);
      return;
    } else {
      this.#processAck(seg, now);
    }
    // 7. Text
    if (seg.payloadLength > 0) this.#receive(seg, packet);
    // 8. FIN, only in order (after the payload before it).
    if (seg.flags & FIN) {
      if (this.#rcv.receiveFin(seqAdd(seg.seq, seg.payloadLength))) {
        this.#sendAck();
        if (this.accepted) this.#sink.eof(this); // else accept() reports it, after the held data
        switch (this.#state) {
          case "ESTABLISHED":
            this.#setState("CLOSE_WAIT", now);
            break;
          case "FIN_WAIT_1":
            this.#setState(this.#snd.finAcked() ? "TIME_WAIT" : "CLOSING", now);
            break;
          case "FIN_WAIT_2":
            this.#setState("TIME_WAIT", now);
            break;
        }
      } else if (this.#rcv.finReceived) {
        this.#sendAck(); // docs/tcp.md §6.2: re-ACK duplicate FINs
      }
    }
    this.#flush(now);
  }

  /** An ACK of our current state for a segment not believed, throttled (RFC 5961 §7). */
  #challengeAck(now: number): void {
    if (now - this.#challengeAckAt < CHALLENGE_ACK_INTERVAL_MS) return;
    this.#challengeAckAt = now;
    this.#sendAck();
  }

  /** An acceptable ACK: the send half takes it; a fast retransmit or our FIN's ACK follow. */
  #processAck(seg: TcpRepr, now: number): void {
    switch (this.#snd.processAck(seg, now)) {
      case "fast-retransmit":
        this.#retransmit(now);
        break;
      case "fin-acked":
        this.#ourFinAcked(now);
        break;
    }
  }

  #ourFinAcked(now: number): void {
    switch (this.#state) {
      case "FIN_WAIT_1":
        this.#setState("FIN_WAIT_2", now);
        break;
      case "CLOSING":
        this.#setState("TIME_WAIT", now);
        break;
      case "LAST_ACK":
        this.#terminate("closed");
        break;
    }
  }

  /**
   * Payload: in order to the relay, out of order into the queue with an immediate duplicate ACK
   * (docs/tcp.md §4.7). Once the app sent its FIN no more is taken (RFC 9293 §3.10.7.4).
   */
  #receive(seg: TcpRepr, packet: Uint8Array): void {
    if (
      !(this.#state === "ESTABLISHED" || this.#state === "FIN_WAIT_1" ||
        this.#state === "FIN_WAIT_2")
    ) {
      return;
    }
    if (this.#rcv.receive(seg, packet)) this.#sendAck();
    else this.#ackPending = true;
  }

  /** The relay consumed `n` bytes: reopen the window (docs/tcp.md §4.4). */
  consumed(n: number): void {
    const urgency = this.#rcv.consumed(n);
    if (this.#state === "SYN_RECEIVED" || this.#state === "CLOSED" || this.#rcv.finReceived) return;
    if (urgency === "now") this.#sendAck();
    else if (urgency === "later") this.#ackPending = true;
  }

  /** Queues bytes from the relay; returns how many fit (backpressure, docs/tcp.md §5.5). */
  send(data: Uint8Array, now: number): number {
    if (this.#snd.finQueued || !this.#canSend()) return 0;
    const n = this.#snd.queue(data);
    if (n > 0) this.#flush(now);
    return n;
  }

  #canSend(): boolean {
    return this.#state === "ESTABLISHED" || this.#state === "CLOSE_WAIT" ||
      this.#state === "SYN_RECEIVED";
  }

  /** Half-close towards the application once queued data is out (docs/tcp.md §6.1). */
  finish(now: number): void {
    if (this.#snd.finQueued) return;
    this.#snd.finQueued = true;
    this.#flush(now);
  }

  /** Sends what the window allows, then the FIN if due, then a pending ACK. */
  #flush(now: number): void {
    if (this.#state === "SYN_RECEIVED" || this.#state === "CLOSED" || this.#state === "TIME_WAIT") {
      return;
    }
    const sent = this.#snd.transmit(now);
    if (sent === "fin") {
      if (this.#state === "ESTABLISHED") this.#setState("FIN_WAIT_1", now);
      else if (this.#state === "CLOSE_WAIT") this.#setState("LAST_ACK", now);
    }
    if (sent !== "none") this.#ackPending = false; // the segments carried the ACK
    else if (this.#ackPending) this.#sendAck();
  }

  /** Go-back-N from SND.UNA (docs/tcp.md §5.2, §5.3). */
  #retransmit(now: number): void {
    this.#snd.rewind();
    this.#flush(now);
    this.#snd.rearm(now);
  }

  /** Runs the timers that came due (none, when the stack's heap fired early). */
  onTimer(now: number): void {
    if (this.#timers.isDue("idle", now) && this.#state !== "TIME_WAIT") {
      if (
        !this.#snd.finQueued && (this.#state === "ESTABLISHED" || this.#state === "CLOSE_WAIT")
      ) {
        this.finish(now);
        this.#timers.arm("idle", now + IDLE_CLOSE_GRACE_MS);
        return;
      }
      this.#timeOut();
      return;
    }
    if (this.#timers.isDue("close", now)) {
      this.#terminate(this.#state === "FIN_WAIT_2" ? "timeout" : "closed");
      return;
    }
    if (this.#timers.isDue("retransmit", now)) {
      if (this.#state === "SYN_RECEIVED") {
        if (!this.#snd.backOff(SYNACK_TRIES - 1)) this.#terminate("timeout");
        else this.#sendSynAck(now);
        return;
      }
      if (!this.#snd.backOff()) {
        this.#timeOut();
        return;
      }
      this.#retransmit(now);
    }
    if (this.#timers.isDue("probe", now)) {
      this.#timers.cancel("probe");
      if (this.#snd.tailLossProbe()) this.#retransmit(now);
    }
    if (this.#timers.isDue("persist", now)) {
      this.#timers.cancel("persist");
      const probe = this.#snd.zeroWindowProbe(now);
      if (probe === "gave-up") this.#timeOut();
      else if (probe === "probed") this.#ackPending = false;
    }
  }

  /** Given up on (idle, or unanswered): RST, and the relay hears of a timeout. */
  #timeOut(): void {
    this.abort();
    this.#sink.closed(this, "timeout");
  }

  /**
   * Builds and transmits one segment with `length` bytes of the send buffer from `offset`. A
   * RST|ACK before the handshake completed is a refusal (docs/tcp.md §3.1): SEQ 0 and ACK = the
   * app's ISN + 1. A SYN-ACK carries our options and an unscaled window (docs/tcp.md §2.2, §2.3).
   */
  #emit(flags: number, seq: number, offset: number, length: number): void {
    const header: TcpOut = {
      src: this.local.address,
      dst: this.remote.address,
      srcPort: this.local.port,
      dstPort: this.remote.port,
      seq,
      ack: this.#rcv.nxt,
      flags,
      window: 0,
    };
    if (flags === (RST | ACK) && !this.#synAckSent) {
      // A refusal before any SYN-ACK: the app's SYN-SENT reads only its ACK. Once a SYN-ACK went
      // out, the app may be established already and takes a reset only at RCV.NXT (SND.NXT here).
      header.seq = 0;
    } else if (flags & SYN) {
      header.window = unscaledWindow(this.#rcv.cap);
      this.#rcv.advertised(header.window);
      header.mss = this.#config.mss;
      header.windowScale = this.#snd.shift > 0 || this.#rcv.shift > 0 ? this.#rcv.shift : undefined;
    } else if (!(flags & RST)) {
      header.window = this.#rcv.windowField();
    }
    this.#sink.transmit(
      this,
      length > 0
        ? { header, payload: { buffer: this.#snd.buffer, offset, length }, mss: this.#snd.mss }
        : { header },
    );
  }

  #sendAck(): void {
    this.#ackPending = false;
    // SEQ = the highest sequence sent: after a go-back-N rewind the peer's RCV.NXT may already
    // be past SND.NXT, and Linux drops (without reading its ACK) a segment below its window.
    this.#emit(ACK, this.#snd.max, 0, 0);
  }

  /** Sends RST (SEQ = SND.NXT, docs/tcp.md §6.5) and frees the connection. */
  abort(): void {
    if (this.#state === "CLOSED") return;
    if (this.#synAckSent) this.#emit(RST | ACK, this.#snd.nxt, 0, 0);
    this.#setState("CLOSED");
  }

  /**
   * The dial failed. Before the SYN-ACK the SYN is refused: RST|ACK with ACK = ISN + 1
   * (docs/tcp.md §3.1, §6.5), and the app sees ECONNREFUSED. A connection opened from a SYN
   * cookie is already established for the app: it is reset (RST at SND.NXT), and the app sees
   * ECONNRESET.
   */
  refuse(): void {
    if (this.accepted || this.#state === "CLOSED") return;
    this.#emit(RST | ACK, this.#synAckSent ? this.#snd.nxt : 0, 0, 0);
    this.#setState("CLOSED");
  }

  #terminate(why: "closed" | "reset" | "timeout"): void {
    if (this.#state === "CLOSED") return;
    this.#setState("CLOSED");
    this.#sink.closed(this, why);
  }

  /**
   * Ends a turn of the stack's loop: sends the ACK still owed (one for everything the turn
   * received, docs/tcp.md §4.6) and returns the next deadline of any timer, or 0.
   */
  settle(now: number): number {
    if (this.#ackPending) this.#flush(now);
    return this.#timers.next();
  }
}
