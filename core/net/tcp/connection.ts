/**
 * One TCP connection that the application's kernel opened towards a routed address; k8stun is
 * the passive side. Consumes parsed segments, produces segments through {@link SegmentSink}, and
 * reports relay events to the stack. Rules cite tcp-stack.md (T-numbers) and RFC 9293.
 */
import { ACK, FIN, PSH, RST, SYN, type TcpOut, type TcpRepr } from "../wire/tcp.ts";
import { SendBuffer } from "./send_buffer.ts";
import { effectiveSendMss } from "./mss.ts";
import type { CopyBytes } from "../copy.ts";
import { seqAdd, seqDiff, seqGt, seqLe, seqLt } from "./seq.ts";
import { ConnectionTimers } from "./timers.ts";
import { Receiver, unscaledWindow } from "./receiver.ts";

/** States used (tcp-stack.md §3.1); LISTEN is implicit and SYN-SENT never occurs. */
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

const RTO_MIN = 200; // Linux's floor (T19)
const RTO_MAX = 60_000;
const RTO_INITIAL = 1000;
/** Tail loss probe floor (RFC 8985 §7.2 PTO = 2·SRTT; Linux uses 10 ms as well). */
const PTO_MIN = 10;
const MAX_BACKOFFS = 12;
const SYNACK_TRIES = 5; // T9
const TIME_WAIT_MS = 2000; // short TIME-WAIT (T25)
const FIN_WAIT_2_MS = 60_000; // T30
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
  readonly config: ConnectionConfig;
  readonly sink: SegmentSink;
  #state: TcpState = "SYN_RECEIVED";
  /** The owner's dial succeeded (`accept`): the relay takes data and events from now on. */
  accepted = false;
  /** The app got our SYN-ACK: it knows of this connection (and a refusal is a reset). */
  #synAckSent = false;
  /** The receive half (receiver.ts). */
  readonly #rcv: Receiver;
  /**
   * In-order bytes received before the dial succeeded, for the relay once it does: only a
   * connection opened from a SYN cookie, whose handshake completes first, has any. Bounded by
   * the receive window (they count in `buffered`).
   */
  #held: Uint8Array[] = [];
  /** An ACK is owed, sent at the end of the stack's turn unless data carries it (§4.6). */
  #ackPending = false;
  // send side
  readonly iss: number;
  sndUna: number;
  sndNxt: number;
  /** Highest sequence ever sent: after a go-back-N rewind, ACKs up to here are still valid. */
  sndMax: number;
  sndWnd = 0;
  /** The largest window the peer ever offered: MAX.SND.WND of RFC 5961 §5.2. */
  #maxSndWnd = 0;
  #sndWl1 = 0;
  #sndWl2 = 0;
  readonly sndShift: number;
  readonly sendMss: number;
  /** Largest payload of one emitted data segment (the MSS, or more with segment offload). */
  readonly sendChunk: number;
  readonly sendBuffer: SendBuffer;
  readonly #sendCap: number;
  /** The relay asked for a FIN after the queued data. */
  finQueued = false;
  #finSent = false;
  #dupAcks = 0;
  /**
   * Loss recovery (RFC 6582 NewReno, with go-back-N): SND.MAX when it started. Losses on this
   * local link are drops of a whole burst (a receive queue that was full, or segments past a
   * window the app's kernel would not take), so everything after the hole is resent at once and
   * again at each partial ACK, instead of one segment per round trip and an RTO for the rest.
   */
  #recovery: { until: number } | undefined;
  #wantWritable = false;
  /** Every deadline of this connection (timers.ts). */
  readonly #timers = new ConnectionTimers();
  /** Zero-window probes sent since the window closed: each doubles the persist interval. */
  #persistBackoff = 0;
  /**
   * Zero-window probes sent since the peer last acknowledged anything. A peer that answers keeps
   * its window closed as long as it likes (RFC 9293 §3.8.6.1); one that stops answering is given
   * up on like an unanswered retransmission.
   */
  #probesUnanswered = 0;
  /** When the last challenge ACK went out (CHALLENGE_ACK_INTERVAL_MS). */
  #challengeAckAt = -Infinity;
  /**
   * Tail loss probe (RFC 8985 §7): data in flight and no ACK progress for a PTO. On this one-hop
   * link that means the tail of a burst was dropped (a full receive queue): resend from SND.UNA
   * at once instead of waiting for the 200 ms RTO floor. Once per flight; the RTO stays the
   * backstop.
   */
  #probeFired = false;
  #rto = RTO_INITIAL;
  #srtt = 0;
  #rttvar = 0;
  #backoffs = 0;
  #rttSeq = -1;
  #rttStart = 0;

  constructor(options: ConnectionOptions) {
    const { syn, config, now, synCookie } = options;
    this.id = options.id;
    this.local = options.local;
    this.remote = options.remote;
    this.config = config;
    this.sink = options.sink;
    this.#rcv = new Receiver({
      syn,
      receiveBuffer: config.receiveBuffer,
      mss: config.mss,
      deliver: (part) => {
        if (this.accepted) this.sink.data(this, part);
        else this.#held.push(part.slice()); // `part` views the packet; the dial is still running
      },
    });
    // Scale only if the SYN offered it (docs/tcp.md §2.3).
    this.sndShift = syn.windowScale ?? 0;
    // Our MSS option = MTU − 40; send no more than the peer's MSS, bounded (mss.ts).
    this.sendMss = effectiveSendMss(syn.mss, config.mss);
    // With TSO a segment is a whole number of MSS-sized pieces within one IPv4 packet.
    this.sendChunk = Math.max(
      this.sendMss,
      config.segmentOffload ? Math.floor((65535 - 60) / this.sendMss) * this.sendMss : 0,
    );
    this.sndWnd = syn.window; // SYN windows are never scaled (T3)
    this.#maxSndWnd = this.sndWnd;
    this.#sndWl1 = syn.seq;
    if (synCookie === undefined) {
      const isn = new Uint32Array(1);
      crypto.getRandomValues(isn);
      this.iss = isn[0]; // random ISN (RFC 6528)
      this.sndUna = this.iss;
      this.sndNxt = this.iss;
      this.sndMax = this.iss;
    } else {
      // The SYN-ACK went out statelessly (syn_cookie.ts): its ISN was the cookie, its window the
      // unscaled one. It is never retransmitted: the app's ACK that brought the cookie back is
      // what created this connection.
      this.iss = synCookie;
      this.sndUna = this.iss;
      this.sndNxt = seqAdd(this.iss, 1);
      this.sndMax = this.sndNxt;
      this.#synAckSent = true;
      this.#rcv.advertised(unscaledWindow(this.#rcv.cap));
    }
    this.#sendCap = config.sendBuffer;
    this.sendBuffer = new SendBuffer(config.copy);
    this.#touch(now);
  }

  /** Whether an incoming SYN is a retransmission of this connection's SYN (T9). */
  isSameSyn(syn: TcpRepr): boolean {
    return syn.seq === this.#rcv.irs;
  }

  /**
   * The dial succeeded: send the SYN-ACK (T8). A connection opened from a SYN cookie completed
   * its handshake before the dial: the relay gets what the app sent meanwhile.
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
    for (const part of held) this.sink.data(this, part);
    if (this.#rcv.finReceived) this.sink.eof(this);
  }

  #sendSynAck(now: number): void {
    this.#synAckSent = true;
    this.#emit(SYN | ACK, this.iss, 0, 0);
    this.sndNxt = seqAdd(this.iss, 1);
    this.sndMax = this.sndNxt;
    this.#timers.arm("retransmit", now + this.#rto);
  }

  /** Retransmitted SYN: resend the SYN-ACK if one was sent (T9). */
  duplicateSyn(now: number): void {
    if (this.accepted && this.#state === "SYN_RECEIVED") this.#sendSynAck(now);
  }

  #touch(now: number): void {
    if (this.config.idleTimeoutMs > 0) this.#timers.arm("idle", now + this.config.idleTimeoutMs);
  }

  /** Processes one segment (RFC 9293 §3.10.7.4; tcp-stack.md §3.3). */
  onSegment(seg: TcpRepr, packet: Uint8Array, now: number): void {
    this.#touch(now);
    const length = seg.payloadLength + (seg.flags & SYN ? 1 : 0) + (seg.flags & FIN ? 1 : 0);
    if (!this.#synAckSent) return; // dial pending: the app has had no answer yet
    // 1. Sequence check (T11): unacceptable → ACK (unless RST) and drop.
    if (!this.#rcv.acceptable(seg.seq, length)) {
      if (!(seg.flags & RST)) {
        // T12: still learn from the ACK and window of a data segment we cannot take.
        if (
          seg.flags & ACK && this.#state !== "SYN_RECEIVED" && this.#ackAcceptable(seg.ack)
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
      if (seqLt(this.sndUna, seg.ack) && seqLe(seg.ack, this.sndNxt)) {
        this.#setState("ESTABLISHED", now); // docs/tcp.md §3.3: any acceptable ACK completes it
        this.sndUna = seg.ack;
        this.#timers.cancel("retransmit");
        this.#backoffs = 0;
        this.sndWnd = seg.window << this.sndShift;
        this.#maxSndWnd = Math.max(this.#maxSndWnd, this.sndWnd);
        this.#sndWl1 = seg.seq;
        this.#sndWl2 = seg.ack;
      } else {
        this.#emit(RST, seg.ack, 0, 0);
        return;
      }
    } else if (!this.#ackAcceptable(seg.ack)) {
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
      const finSeq = seqAdd(seg.seq, seg.payloadLength);
      if (this.#rcv.receiveFin(finSeq)) {
        this.#sendAck();
        if (this.accepted) this.sink.eof(this); // else accept() reports it, after the held data
        switch (this.#state) {
          case "ESTABLISHED":
            this.#setState("CLOSE_WAIT", now);
            break;
          case "FIN_WAIT_1":
            this.#setState(this.#finAcked() ? "TIME_WAIT" : "CLOSING", now);
            break;
          case "FIN_WAIT_2":
            this.#setState("TIME_WAIT", now);
            break;
        }
      } else if (this.#rcv.finReceived) {
        this.#sendAck(); // T24: re-ACK duplicate FINs
      }
    }
    this.#flush(now);
  }

  /**
   * RFC 5961 §5.2: an ACK is believed only within [SND.UNA − MAX.SND.WND, SND.MAX]. Above, it
   * acknowledges something never sent; far below, it is no duplicate of ours but a blind guess.
   * (SND.MAX rather than SND.NXT: after a go-back-N rewind, ACKs up to SND.MAX are genuine.)
   */
  #ackAcceptable(ack: number): boolean {
    return seqLe(ack, this.sndMax) &&
      seqLe(seqAdd(this.sndUna, -this.#maxSndWnd), ack);
  }

  /** An ACK of our current state for a segment not believed, throttled (RFC 5961 §7). */
  #challengeAck(now: number): void {
    if (now - this.#challengeAckAt < CHALLENGE_ACK_INTERVAL_MS) return;
    this.#challengeAckAt = now;
    this.#sendAck();
  }

  /** Step 5 of segment processing, for an ACK that passed {@link #ackAcceptable}. */
  #processAck(seg: TcpRepr, now: number): void {
    this.#probesUnanswered = 0; // the peer is alive (zero-window probing, onTimer)
    // After a rewind, an ACK for data sent before it moves SND.NXT forward again.
    if (seqGt(seg.ack, this.sndNxt)) this.sndNxt = seg.ack;
    if (seqLt(this.sndUna, seg.ack)) {
      const acked = seqDiff(seg.ack, this.sndUna);
      const finAckedNow = this.#finSent && seg.ack === this.sndMax;
      const dataAcked = Math.min(acked, this.sendBuffer.length);
      this.sendBuffer.drop(dataAcked);
      this.sndUna = seg.ack;
      this.#dupAcks = 0;
      if (this.#recovery) {
        if (seqLt(seg.ack, this.#recovery.until)) {
          // Partial ACK: the next hole starts here; resend from it (flush follows).
          this.sndNxt = this.sndUna;
          this.#finSent = false;
        } else this.#recovery = undefined;
      }
      this.#backoffs = 0;
      if (this.#rttSeq >= 0 && seqLe(this.#rttSeq, seg.ack)) {
        this.#rttSample(now - this.#rttStart); // Karn: only for segments sent once
        this.#rttSeq = -1;
      }
      this.#timers.arm("retransmit", this.sndUna === this.sndNxt ? 0 : now + this.#rto);
      this.#probeFired = false;
      this.#timers.cancel("probe");
      if (this.sndUna !== this.sndNxt) this.#armProbe(now);
      if (this.#wantWritable && this.sendBuffer.length < this.#sendCap) {
        this.#wantWritable = false;
        this.sink.writable(this);
      }
      if (finAckedNow) this.#ourFinAcked(now);
    } else if (
      seg.ack === this.sndUna && seg.payloadLength === 0 && this.sndUna !== this.sndNxt &&
      (seg.window << this.sndShift) === this.sndWnd && !(seg.flags & FIN)
    ) {
      // T20: third duplicate ACK → resend from the first unacknowledged byte at once.
      if (++this.#dupAcks === 3 && !this.#recovery) {
        this.#recovery = { until: this.sndMax };
        this.#retransmit(now);
      }
    }
    // Window update (RFC 9293 §3.10.7.4; pure window updates count), never from an ACK older
    // than SND.UNA: a reordered old segment must not resurrect a stale window.
    if (
      seqLe(this.sndUna, seg.ack) &&
      (seqLt(this.#sndWl1, seg.seq) || (this.#sndWl1 === seg.seq && seqLe(this.#sndWl2, seg.ack)))
    ) {
      this.sndWnd = seg.window << this.sndShift;
      this.#maxSndWnd = Math.max(this.#maxSndWnd, this.sndWnd);
      this.#sndWl1 = seg.seq;
      this.#sndWl2 = seg.ack;
      if (this.sndWnd > 0) {
        this.#timers.cancel("persist");
        this.#persistBackoff = 0;
      }
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

  #finAcked(): boolean {
    return this.#finSent && this.sndUna === this.sndNxt;
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

  /** Queues bytes from the relay; returns how many fit (backpressure, T22). */
  send(data: Uint8Array, now: number): number {
    if (this.finQueued || !this.#canSend()) return 0;
    const room = this.#sendCap - this.sendBuffer.length;
    const n = Math.min(room, data.length);
    if (n <= 0) {
      this.#wantWritable = true;
      return 0;
    }
    this.sendBuffer.push(data.subarray(0, n));
    if (n < data.length) this.#wantWritable = true;
    this.#flush(now);
    return n;
  }

  #canSend(): boolean {
    return this.#state === "ESTABLISHED" || this.#state === "CLOSE_WAIT" ||
      this.#state === "SYN_RECEIVED";
  }

  /** Half-close towards the application once queued data is out (T23b). */
  finish(now: number): void {
    if (this.finQueued) return;
    this.finQueued = true;
    this.#flush(now);
  }

  /** Sends what the window allows, then the FIN if due, then a pending ACK. */
  #flush(now: number): void {
    if (this.#state === "SYN_RECEIVED" || this.#state === "CLOSED" || this.#state === "TIME_WAIT") {
      return;
    }
    let sentSomething = false;
    // With the FIN out every byte is sent (a rewind clears #finSent); once the FIN is acknowledged,
    // subtracting it from SND.NXT − SND.UNA would make the flight −1 and "send" a byte at −1.
    while (!this.#finSent) {
      const inFlight = seqDiff(this.sndNxt, this.sndUna);
      const unsent = this.sendBuffer.length - inFlight;
      if (unsent <= 0) break;
      const window = this.sndWnd - inFlight;
      if (window <= 0) {
        // Zero window with data pending and nothing in flight → persist timer (RFC 9293
        // §3.8.6.1); with data in flight the retransmission timer covers it.
        if (!this.#timers.isArmed("persist") && !this.#timers.isArmed("retransmit")) {
          this.#armPersist(now);
        }
        break;
      }
      // A super-segment is at most a quarter of the peer's window: Linux drops a 64 KiB skb that
      // lands in a nearly full receive queue (PruneCalled), and only an RTO would resend it.
      const chunk = Math.max(
        this.sendMss,
        Math.min(this.sendChunk, Math.floor(this.sndWnd / 4 / this.sendMss) * this.sendMss),
      );
      const length = Math.min(unsent, window, chunk);
      // Sender SWS avoidance (T22): no sub-MSS segment while more is queued behind a small window.
      if (length < this.sendMss && length < unsent && inFlight > 0) break;
      const flags = ACK | (length === unsent ? PSH : 0);
      this.#emit(flags, this.sndNxt, inFlight, length);
      if (this.#rttSeq < 0) {
        this.#rttSeq = seqAdd(this.sndNxt, length);
        this.#rttStart = now;
      }
      this.sndNxt = seqAdd(this.sndNxt, length);
      if (seqGt(this.sndNxt, this.sndMax)) this.sndMax = this.sndNxt;
      this.#ackPending = false;
      sentSomething = true;
      if (!this.#timers.isArmed("retransmit")) this.#timers.arm("retransmit", now + this.#rto);
      if (!this.#timers.isArmed("probe") && !this.#probeFired) this.#armProbe(now);
    }
    const allSent =
      seqDiff(this.sndNxt, this.sndUna) - (this.#finSent ? 1 : 0) >= this.sendBuffer.length;
    if (this.finQueued && !this.#finSent && allSent) {
      this.#emit(FIN | ACK, this.sndNxt, 0, 0);
      this.sndNxt = seqAdd(this.sndNxt, 1);
      if (seqGt(this.sndNxt, this.sndMax)) this.sndMax = this.sndNxt;
      this.#finSent = true;
      this.#ackPending = false;
      sentSomething = true;
      if (!this.#timers.isArmed("retransmit")) this.#timers.arm("retransmit", now + this.#rto);
      if (this.#state === "ESTABLISHED") this.#setState("FIN_WAIT_1", now);
      else if (this.#state === "CLOSE_WAIT") this.#setState("LAST_ACK", now);
    }
    if (this.#ackPending && !sentSomething) this.#sendAck();
  }

  /** Runs the timers that came due (none, when the stack's heap fired early). */
  onTimer(now: number): void {
    if (this.#timers.isDue("idle", now) && this.#state !== "TIME_WAIT") {
      if (!this.finQueued && (this.#state === "ESTABLISHED" || this.#state === "CLOSE_WAIT")) {
        this.finish(now);
        this.#timers.arm("idle", now + IDLE_CLOSE_GRACE_MS);
        return;
      }
      this.abort();
      this.sink.closed(this, "timeout");
      return;
    }
    if (this.#timers.isDue("close", now)) {
      this.#terminate(this.#state === "FIN_WAIT_2" ? "timeout" : "closed");
      return;
    }
    if (this.#timers.isDue("retransmit", now)) {
      if (this.#state === "SYN_RECEIVED") {
        if (++this.#backoffs >= SYNACK_TRIES) {
          this.#terminate("timeout");
          return;
        }
        this.#rto = Math.min(this.#rto * 2, RTO_MAX);
        this.#sendSynAck(now);
        return;
      }
      if (++this.#backoffs > MAX_BACKOFFS) {
        this.abort();
        this.sink.closed(this, "timeout");
        return;
      }
      this.#rto = Math.min(this.#rto * 2, RTO_MAX);
      this.#retransmit(now);
    }
    if (this.#timers.isDue("probe", now)) {
      this.#timers.cancel("probe");
      if (this.sndUna !== this.sndNxt && this.sendBuffer.length > 0) {
        this.#probeFired = true;
        this.#recovery ??= { until: this.sndMax };
        this.#retransmit(now);
      }
    }
    if (this.#timers.isDue("persist", now)) {
      this.#timers.cancel("persist");
      const inFlight = seqDiff(this.sndNxt, this.sndUna);
      if (
        this.sndWnd === 0 && !this.#timers.isArmed("retransmit") &&
        this.sendBuffer.length > inFlight
      ) {
        if (++this.#probesUnanswered > MAX_BACKOFFS) {
          this.abort();
          this.sink.closed(this, "timeout");
          return;
        }
        // Zero-window probe as Linux sends it (tcp_xmit_probe_skb): an ACK with SEQ = SND.UNA − 1,
        // below the peer's window, which it must answer with an ACK carrying its current window.
        // It occupies no sequence space, so it never enters retransmission and its answers are
        // no duplicate ACKs.
        this.#emit(ACK, seqAdd(this.sndUna, -1), 0, 0);
        this.#ackPending = false;
        this.#persistBackoff++;
        this.#armPersist(now);
      }
    }
  }

  /** The persist timer: the RTO (at least RTO_MIN), doubled per probe sent, at most RTO_MAX. */
  #armPersist(now: number): void {
    const base = Math.max(this.#rto, RTO_MIN);
    this.#timers.arm(
      "persist",
      now + Math.min(RTO_MAX, base * 2 ** Math.min(this.#persistBackoff, 16)),
    );
  }

  /** Go-back-N from SND.UNA, for an RTO (T19) and fast retransmit (T20). */
  #retransmit(now: number): void {
    this.#rttSeq = -1; // Karn's rule
    // Rewind and let flush() resend data and FIN as the window allows.
    this.sndNxt = this.sndUna;
    this.#finSent = false;
    this.#timers.cancel("retransmit");
    this.#flush(now);
    if (!this.#timers.isArmed("retransmit") && this.sndNxt !== this.sndUna) {
      this.#timers.arm("retransmit", now + this.#rto);
    }
  }

  #armProbe(now: number): void {
    this.#timers.arm("probe", now + Math.max(PTO_MIN, 2 * this.#srtt));
  }

  #rttSample(ms: number): void {
    // RFC 6298 §2
    if (this.#srtt === 0) {
      this.#srtt = ms;
      this.#rttvar = ms / 2;
    } else {
      this.#rttvar = 0.75 * this.#rttvar + 0.25 * Math.abs(this.#srtt - ms);
      this.#srtt = 0.875 * this.#srtt + 0.125 * ms;
    }
    this.#rto = Math.min(RTO_MAX, Math.max(RTO_MIN, this.#srtt + Math.max(1, 4 * this.#rttvar)));
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
    if (flags === (RST | ACK) && this.#state === "SYN_RECEIVED") {
      header.seq = 0;
    } else if (flags & SYN) {
      header.window = unscaledWindow(this.#rcv.cap);
      this.#rcv.advertised(header.window);
      header.mss = this.config.mss;
      header.windowScale = this.sndShift > 0 || this.#rcv.shift > 0 ? this.#rcv.shift : undefined;
    } else if (!(flags & RST)) {
      header.window = this.#rcv.windowField();
    }
    this.sink.transmit(
      this,
      length > 0
        ? { header, payload: { buffer: this.sendBuffer, offset, length }, mss: this.sendMss }
        : { header },
    );
  }

  #sendAck(): void {
    this.#ackPending = false;
    // SEQ = the highest sequence sent: after a go-back-N rewind the peer's RCV.NXT may already
    // be past SND.NXT, and Linux drops (without reading its ACK) a segment below its window.
    this.#emit(ACK, this.sndMax, 0, 0);
  }

  /** Sends RST (SEQ = SND.NXT, T27b) and frees the connection. */
  abort(): void {
    if (this.#state === "CLOSED") return;
    if (this.#synAckSent) this.#emit(RST | ACK, this.sndNxt, 0, 0);
    this.#setState("CLOSED");
  }

  /**
   * The dial failed. Before the SYN-ACK the SYN is refused: RST|ACK with ACK = ISN + 1 (T8,
   * T27a), and the app sees ECONNREFUSED. A connection opened from a SYN cookie is already
   * established for the app: it is reset (RST at SND.NXT), and the app sees ECONNRESET.
   */
  refuse(): void {
    if (this.accepted || this.#state === "CLOSED") return;
    this.#emit(RST | ACK, this.#synAckSent ? this.sndNxt : 0, 0, 0);
    this.#setState("CLOSED");
  }

  #terminate(why: "closed" | "reset" | "timeout"): void {
    if (this.#state === "CLOSED") return;
    this.#setState("CLOSED");
    this.sink.closed(this, why);
  }

  /** The state (docs/tcp.md §8). Every transition goes through `#setState`. */
  get state(): TcpState {
    return this.#state;
  }

  /**
   * Enters `next` and arms what it needs: TIME-WAIT its short timer (docs/tcp.md §6.3),
   * FIN-WAIT-2 its bound (§6.8); CLOSED frees every buffer.
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
        this.sendBuffer.clear();
        this.#rcv.clear();
        this.#held = [];
        break;
    }
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
