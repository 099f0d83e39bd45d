/**
 * The send half of a connection (gVisor's `snd.go`): the send sequence space (RFC 9293 §3.3.1),
 * the send buffer, the peer's window, retransmission (RFC 6298), fast retransmit and NewReno
 * recovery (RFC 6582), the tail loss probe (RFC 8985) and zero-window probing (RFC 9293
 * §3.8.6.1). It emits data, FIN, SYN-ACK and probe segments through the connection, which owns
 * the state machine and decides when the half may send.
 */
import { ACK, FIN, PSH, SYN, type TcpRepr } from "../wire/tcp.ts";
import type { CopyBytes } from "../copy.ts";
import { SendBuffer } from "./send_buffer.ts";
import { effectiveSendMss } from "./mss.ts";
import { seqAdd, seqDiff, seqGt, seqLe, seqLt } from "./seq.ts";
import type { ConnectionTimers } from "./timers.ts";

const RTO_MIN = 200; // Linux's floor (docs/tcp.md §5.2)
const RTO_MAX = 60_000;
const RTO_INITIAL = 1000;
/** Tail loss probe floor (RFC 8985 §7.2 PTO = 2·SRTT; Linux uses 10 ms as well). */
const PTO_MIN = 10;
/** Retransmissions, and unanswered zero-window probes, before the connection is given up. */
const MAX_BACKOFFS = 12;

/** What the send half is created from. */
export interface SenderOptions {
  /** The SYN: the peer's window, MSS and window-scale options. */
  syn: TcpRepr;
  /** Our MSS (MTU − 40): the bound on the peer's. */
  mss: number;
  /** The device cuts large segments (TSO): emit up to 64 KiB at once, not one MSS. */
  segmentOffload: boolean;
  /** Bytes the relay may queue unacknowledged (docs/tcp.md §5.5). */
  sendBuffer: number;
  copy?: CopyBytes;
  /** The ISN of a SYN-ACK already sent statelessly (syn_cookie.ts), if it was. */
  synCookie?: number;
  /** The connection's deadlines: this half arms the retransmission, probe and persist timers. */
  timers: ConnectionTimers;
  /** Sends a segment: `length` bytes of the send buffer from `offset`. */
  emit: (flags: number, seq: number, offset: number, length: number) => void;
  /** The send buffer has room again after a send that did not fit (docs/tcp.md §5.5). */
  writable: () => void;
}

/** What an acceptable ACK asks of the connection. */
export type AckOutcome = "fin-acked" | "fast-retransmit" | "none";

/** What {@link Sender.transmit} sent. */
export type Transmitted = "fin" | "data" | "none";

/** The send half of one connection. */
export class Sender {
  readonly iss: number;
  /** SND.UNA. */
  una: number;
  /** SND.NXT. */
  nxt: number;
  /** Highest sequence ever sent: after a go-back-N rewind, ACKs up to here are still valid. */
  max: number;
  /** SND.WND, scaled. */
  wnd: number;
  /** The largest window the peer ever offered: MAX.SND.WND of RFC 5961 §5.2. */
  #maxWnd: number;
  #wl1: number;
  #wl2 = 0;
  /** The peer's window shift (docs/tcp.md §2.3). */
  readonly shift: number;
  /** The largest segment the peer takes (docs/tcp.md §2.2). */
  readonly mss: number;
  /** Largest payload of one emitted data segment (the MSS, or more with segment offload). */
  readonly #chunk: number;
  readonly buffer: SendBuffer;
  readonly #cap: number;
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
  /** Zero-window probes sent since the window closed: each doubles the persist interval. */
  #persistBackoff = 0;
  /**
   * Zero-window probes sent since the peer last acknowledged anything. A peer that answers keeps
   * its window closed as long as it likes (RFC 9293 §3.8.6.1); one that stops answering is given
   * up on like an unanswered retransmission.
   */
  #probesUnanswered = 0;
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
  readonly #timers: ConnectionTimers;
  readonly #emit: SenderOptions["emit"];
  readonly #writable: () => void;

  constructor(options: SenderOptions) {
    const { syn, synCookie } = options;
    this.#timers = options.timers;
    this.#emit = options.emit;
    this.#writable = options.writable;
    this.shift = syn.windowScale ?? 0;
    this.mss = effectiveSendMss(syn.mss, options.mss);
    // With TSO a segment is a whole number of MSS-sized pieces within one IPv4 packet.
    this.#chunk = Math.max(
      this.mss,
      options.segmentOffload ? Math.floor((65535 - 60) / this.mss) * this.mss : 0,
    );
    this.wnd = syn.window; // SYN windows are never scaled (docs/tcp.md §2.3)
    this.#maxWnd = this.wnd;
    this.#wl1 = syn.seq;
    if (synCookie === undefined) {
      const isn = new Uint32Array(1);
      crypto.getRandomValues(isn);
      this.iss = isn[0]; // random ISN (RFC 6528)
      this.nxt = this.iss;
    } else {
      // The SYN-ACK went out statelessly (syn_cookie.ts): its ISN was the cookie. It is never
      // retransmitted: the app's ACK that brought the cookie back created this connection.
      this.iss = synCookie;
      this.nxt = seqAdd(this.iss, 1);
    }
    this.una = this.iss;
    this.max = this.nxt;
    this.#cap = options.sendBuffer;
    this.buffer = new SendBuffer(options.copy);
  }

  /** Sends (or resends) the SYN-ACK and arms its retransmission (docs/tcp.md §3.2). */
  sendSynAck(now: number): void {
    this.#emit(SYN | ACK, this.iss, 0, 0);
    this.nxt = seqAdd(this.iss, 1);
    this.max = this.nxt;
    this.#timers.arm("retransmit", now + this.#rto);
  }

  /** Whether `ack` acknowledges our SYN-ACK (RFC 9293 §3.10.7.4, SYN-RECEIVED). */
  acksSynAck(ack: number): boolean {
    return seqLt(this.una, ack) && seqLe(ack, this.nxt);
  }

  /** The handshake completed with `seg` (docs/tcp.md §3.3): its window is the first update. */
  synAcked(seg: TcpRepr): void {
    this.una = seg.ack;
    this.#timers.cancel("retransmit");
    this.#backoffs = 0;
    this.wnd = seg.window << this.shift;
    this.#maxWnd = Math.max(this.#maxWnd, this.wnd);
    this.#wl1 = seg.seq;
    this.#wl2 = seg.ack;
  }

  /**
   * RFC 5961 §5.2: an ACK is believed only within [SND.UNA − MAX.SND.WND, SND.MAX]. Above, it
   * acknowledges something never sent; far below, it is no duplicate of ours but a blind guess.
   * (SND.MAX rather than SND.NXT: after a go-back-N rewind, ACKs up to SND.MAX are genuine.)
   */
  ackAcceptable(ack: number): boolean {
    return seqLe(ack, this.max) && seqLe(seqAdd(this.una, -this.#maxWnd), ack);
  }

  /** Step 5 of segment processing, for an ACK that passed {@link ackAcceptable}. */
  processAck(seg: TcpRepr, now: number): AckOutcome {
    let outcome: AckOutcome = "none";
    this.#probesUnanswered = 0; // the peer is alive (zeroWindowProbe)
    // After a rewind, an ACK for data sent before it moves SND.NXT forward again.
    if (seqGt(seg.ack, this.nxt)) this.nxt = seg.ack;
    if (seqLt(this.una, seg.ack)) {
      const acked = seqDiff(seg.ack, this.una);
      const finAckedNow = this.#finSent && seg.ack === this.max;
      this.buffer.drop(Math.min(acked, this.buffer.length));
      this.una = seg.ack;
      this.#dupAcks = 0;
      if (this.#recovery) {
        if (seqLt(seg.ack, this.#recovery.until)) {
          // Partial ACK: the next hole starts here; resend from it (the connection flushes).
          this.nxt = this.una;
          this.#finSent = false;
        } else this.#recovery = undefined;
      }
      this.#backoffs = 0;
      if (this.#rttSeq >= 0 && seqLe(this.#rttSeq, seg.ack)) {
        this.#rttSample(now - this.#rttStart); // Karn: only for segments sent once
        this.#rttSeq = -1;
      }
      this.#timers.arm("retransmit", this.una === this.nxt ? 0 : now + this.#rto);
      this.#probeFired = false;
      this.#timers.cancel("probe");
      if (this.una !== this.nxt) this.#armProbe(now);
      if (this.#wantWritable && this.buffer.length < this.#cap) {
        this.#wantWritable = false;
        this.#writable();
      }
      if (finAckedNow) outcome = "fin-acked";
    } else if (
      seg.ack === this.una && seg.payloadLength === 0 && this.una !== this.nxt &&
      (seg.window << this.shift) === this.wnd && !(seg.flags & FIN)
    ) {
      // Third duplicate ACK → resend from the first unacknowledged byte at once (docs/tcp.md §5.3).
      if (++this.#dupAcks === 3 && !this.#recovery) {
        this.#recovery = { until: this.max };
        outcome = "fast-retransmit";
      }
    }
    // Window update (RFC 9293 §3.10.7.4; pure window updates count), never from an ACK older
    // than SND.UNA: a reordered old segment must not resurrect a stale window.
    if (
      seqLe(this.una, seg.ack) &&
      (seqLt(this.#wl1, seg.seq) || (this.#wl1 === seg.seq && seqLe(this.#wl2, seg.ack)))
    ) {
      this.wnd = seg.window << this.shift;
      this.#maxWnd = Math.max(this.#maxWnd, this.wnd);
      this.#wl1 = seg.seq;
      this.#wl2 = seg.ack;
      if (this.wnd > 0) {
        this.#timers.cancel("persist");
        this.#persistBackoff = 0;
      }
    }
    return outcome;
  }

  /** Our FIN was sent and everything up to it is acknowledged. */
  finAcked(): boolean {
    return this.#finSent && this.una === this.nxt;
  }

  /** Queues bytes from the relay; returns how many fit (backpressure, docs/tcp.md §5.5). */
  queue(data: Uint8Array): number {
    const n = Math.min(this.#cap - this.buffer.length, data.length);
    if (n <= 0) {
      this.#wantWritable = true;
      return 0;
    }
    this.buffer.push(data.subarray(0, n));
    if (n < data.length) this.#wantWritable = true;
    return n;
  }

  /** Sends what the peer's window allows, then the FIN if one is queued and due. */
  transmit(now: number): Transmitted {
    let sent: Transmitted = "none";
    // With the FIN out every byte is sent (a rewind clears #finSent); once the FIN is acknowledged,
    // subtracting it from SND.NXT − SND.UNA would make the flight −1 and "send" a byte at −1.
    while (!this.#finSent) {
      const inFlight = seqDiff(this.nxt, this.una);
      const unsent = this.buffer.length - inFlight;
      if (unsent <= 0) break;
      const window = this.wnd - inFlight;
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
        this.mss,
        Math.min(this.#chunk, Math.floor(this.wnd / 4 / this.mss) * this.mss),
      );
      const length = Math.min(unsent, window, chunk);
      // Sender SWS avoidance (docs/tcp.md §5.5): no sub-MSS segment while more is queued
      // behind a small window.
      if (length < this.mss && length < unsent && inFlight > 0) break;
      const flags = ACK | (length === unsent ? PSH : 0);
      this.#emit(flags, this.nxt, inFlight, length);
      if (this.#rttSeq < 0) {
        this.#rttSeq = seqAdd(this.nxt, length);
        this.#rttStart = now;
      }
      this.nxt = seqAdd(this.nxt, length);
      if (seqGt(this.nxt, this.max)) this.max = this.nxt;
      sent = "data";
      if (!this.#timers.isArmed("retransmit")) this.#timers.arm("retransmit", now + this.#rto);
      if (!this.#timers.isArmed("probe") && !this.#probeFired) this.#armProbe(now);
    }
    const allSent = seqDiff(this.nxt, this.una) - (this.#finSent ? 1 : 0) >= this.buffer.length;
    if (this.finQueued && !this.#finSent && allSent) {
      this.#emit(FIN | ACK, this.nxt, 0, 0);
      this.nxt = seqAdd(this.nxt, 1);
      if (seqGt(this.nxt, this.max)) this.max = this.nxt;
      this.#finSent = true;
      sent = "fin";
      if (!this.#timers.isArmed("retransmit")) this.#timers.arm("retransmit", now + this.#rto);
    }
    return sent;
  }

  /**
   * The retransmission timer fired: doubles the RTO and returns true, or false once `limit`
   * backoffs were spent (docs/tcp.md §5.2).
   */
  backOff(limit = MAX_BACKOFFS): boolean {
    if (++this.#backoffs > limit) return false;
    this.#rto = Math.min(this.#rto * 2, RTO_MAX);
    return true;
  }

  /**
   * Go-back-N from SND.UNA, for an RTO and fast retransmit (docs/tcp.md §5.2, §5.3): the
   * connection transmits again after the rewind, then calls {@link rearm}.
   */
  rewind(): void {
    this.#rttSeq = -1; // Karn's rule
    this.nxt = this.una;
    this.#finSent = false;
    this.#timers.cancel("retransmit");
  }

  /** After a rewind's transmission: the retransmission timer covers what is in flight. */
  rearm(now: number): void {
    if (!this.#timers.isArmed("retransmit") && this.nxt !== this.una) {
      this.#timers.arm("retransmit", now + this.#rto);
    }
  }

  /** The tail loss probe fired: whether to resend from SND.UNA (RFC 8985 §7). */
  tailLossProbe(): boolean {
    if (this.una === this.nxt || this.buffer.length === 0) return false;
    this.#probeFired = true;
    this.#recovery ??= { until: this.max };
    return true;
  }

  /**
   * The persist timer fired (docs/tcp.md §5.4): sends a zero-window probe if the window is still
   * closed with data waiting. Returns "gave-up" when the peer stopped answering probes.
   */
  zeroWindowProbe(now: number): "probed" | "gave-up" | "none" {
    const inFlight = seqDiff(this.nxt, this.una);
    if (this.wnd !== 0 || this.#timers.isArmed("retransmit") || this.buffer.length <= inFlight) {
      return "none";
    }
    if (++this.#probesUnanswered > MAX_BACKOFFS) return "gave-up";
    // Zero-window probe as Linux sends it (tcp_xmit_probe_skb): an ACK with SEQ = SND.UNA − 1,
    // below the peer's window, which it must answer with an ACK carrying its current window.
    // It occupies no sequence space, so it never enters retransmission and its answers are
    // no duplicate ACKs.
    this.#emit(ACK, seqAdd(this.una, -1), 0, 0);
    this.#persistBackoff++;
    this.#armPersist(now);
    return "probed";
  }

  /** The persist timer: the RTO (at least RTO_MIN), doubled per probe sent, at most RTO_MAX. */
  #armPersist(now: number): void {
    const base = Math.max(this.#rto, RTO_MIN);
    this.#timers.arm(
      "persist",
      now + Math.min(RTO_MAX, base * 2 ** Math.min(this.#persistBackoff, 16)),
    );
  }

  #armProbe(now: number): void {
    this.#timers.arm("probe", now + Math.max(PTO_MIN, 2 * this.#srtt));
  }

  /** RFC 6298 §2. */
  #rttSample(ms: number): void {
    if (this.#srtt === 0) {
      this.#srtt = ms;
      this.#rttvar = ms / 2;
    } else {
      this.#rttvar = 0.75 * this.#rttvar + 0.25 * Math.abs(this.#srtt - ms);
      this.#srtt = 0.875 * this.#srtt + 0.125 * ms;
    }
    this.#rto = Math.min(RTO_MAX, Math.max(RTO_MIN, this.#srtt + Math.max(1, 4 * this.#rttvar)));
  }
}
