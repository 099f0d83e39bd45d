/**
 * The receive half of a connection (gVisor's `rcv.go`): the receive sequence space (RFC 9293
 * §3.3.1), the window we advertise, the acceptability test and the out-of-order queue. It
 * decides which bytes are in order and whether they need an ACK now; the connection owns the
 * state machine and sends the segments.
 */
import type { TcpRepr } from "../wire/tcp.ts";
import { seqAdd, seqDiff, seqGt, seqLe, seqLt } from "./seq.ts";

/**
 * Out-of-order segments kept for reassembly (RFC 9293 §3.10.7.4), besides the byte bound of the
 * receive buffer: enough for a whole window of MTU-sized segments, so one lost segment costs the
 * sender one retransmission, not one per segment that followed it (a window of 4 MiB at MSS 1460
 * is 2,900 segments; without offload every one of them is a packet).
 */
const OOO_MAX_SEGMENTS = 4096;

/**
 * The receive window without window scaling (RFC 7323 §2.2: a 16-bit field): the cap of a
 * connection whose SYN offered no scaling, and the window of every SYN-ACK.
 */
export function unscaledWindow(receiveBuffer: number): number {
  return Math.min(receiveBuffer, 0xffff);
}

/** What the receive half is created from. */
export interface ReceiverOptions {
  /** The SYN: its ISN, and whether it offered window scaling. */
  syn: TcpRepr;
  /** Bytes the relay may hold unconsumed (docs/tcp.md §4.3). */
  receiveBuffer: number;
  /** Our MSS: the window update threshold (docs/tcp.md §4.4). */
  mss: number;
  /** Takes in-order bytes; `part` may view the packet, valid only during the call. */
  deliver: (part: Uint8Array) => void;
}

/** How soon a change on the receive side must be acknowledged (docs/tcp.md §4.6). */
export type AckUrgency = "now" | "later" | "none";

/** The receive half of one connection. */
export class Receiver {
  /** The app's initial sequence number (IRS). */
  readonly irs: number;
  /** RCV.NXT. */
  nxt: number;
  /** The right edge of the window we promised: it never moves left (docs/tcp.md §4.3). */
  #adv: number;
  /** Our window shift, fixed for life and sized for the cap (docs/tcp.md §2.3). */
  readonly shift: number;
  /** The most the relay may hold: the whole window. */
  readonly cap: number;
  /** Bytes delivered to the relay and not yet consumed (docs/tcp.md §4.3). */
  buffered = 0;
  /** The app's FIN was received in order. */
  finReceived = false;
  #ooo: { seq: number; data: Uint8Array }[] = [];
  /** Bytes held in #ooo: never more than the receive buffer, however the segments overlap. */
  #oooBytes = 0;
  readonly #mss: number;
  readonly #deliver: (part: Uint8Array) => void;

  constructor(options: ReceiverOptions) {
    const { syn, receiveBuffer } = options;
    this.irs = syn.seq;
    this.nxt = seqAdd(syn.seq, 1);
    // Scale only if the SYN offered it (docs/tcp.md §2.3).
    const offered = syn.windowScale !== undefined;
    this.cap = offered ? receiveBuffer : unscaledWindow(receiveBuffer);
    let shift = 0;
    while (offered && (65535 << shift) < this.cap && shift < 14) shift++;
    this.shift = shift;
    this.#adv = this.nxt;
    this.#mss = options.mss;
    this.#deliver = options.deliver;
  }

  /** The window field to send now (docs/tcp.md §4.3): the right edge never moves left. */
  windowField(): number {
    const free = Math.max(0, this.cap - this.buffered);
    const granule = (1 << this.shift) - 1;
    const edge = seqAdd(this.nxt, free & ~granule);
    if (seqGt(edge, this.#adv)) this.#adv = edge;
    const window = seqDiff(this.#adv, this.nxt);
    const field = Math.min(0xffff, Math.ceil(window / (1 << this.shift)));
    // The peer computes the edge from the scaled field; promise exactly that edge.
    const promised = seqAdd(this.nxt, field << this.shift);
    if (seqGt(promised, this.#adv)) this.#adv = promised;
    return field;
  }

  /** Records a window promised outside `windowField` (the SYN-ACK's unscaled window). */
  advertised(window: number): void {
    const edge = seqAdd(this.nxt, window);
    if (seqGt(edge, this.#adv)) this.#adv = edge;
  }

  /** The acceptability test of RFC 9293 §3.10.7.4 (docs/tcp.md §4.1). */
  acceptable(seq: number, length: number): boolean {
    const window = seqDiff(this.#adv, this.nxt);
    if (length === 0) {
      return window === 0
        ? seq === this.nxt
        : seqLe(this.nxt, seq) && seqLt(seq, seqAdd(this.nxt, window));
    }
    if (window <= 0) return false;
    const end = seqAdd(seq, length - 1);
    const right = seqAdd(this.nxt, window);
    return (seqLe(this.nxt, seq) && seqLt(seq, right)) ||
      (seqLe(this.nxt, end) && seqLt(end, right)) ||
      // a retransmission overlapping data we already have still carries new bytes
      (seqLt(seq, this.nxt) && seqGt(end, this.nxt));
  }

  /**
   * Takes the payload of an acceptable segment: in-order bytes (and the queued segments they make
   * contiguous) go to `deliver`, out-of-order ones into the queue (docs/tcp.md §4.7). Returns
   * whether to ACK at once: for a segment out of order or past the window (a duplicate ACK), or
   * one that filled a hole.
   */
  receive(seg: TcpRepr, packet: Uint8Array): boolean {
    let start = seg.payloadOffset;
    let seq = seg.seq;
    const end = seg.payloadOffset + seg.payloadLength;
    if (seqLt(seq, this.nxt)) {
      start += seqDiff(this.nxt, seq);
      seq = this.nxt;
    }
    // Never accept beyond the advertised right edge (docs/tcp.md §4.3).
    const room = seqDiff(this.#adv, seq);
    const stop = Math.min(end, start + Math.max(0, room));
    if (stop <= start) return true;
    if (seq !== this.nxt) {
      if (this.#ooo.length < OOO_MAX_SEGMENTS && this.#oooBytes + (stop - start) <= this.cap) {
        this.#queueOutOfOrder(seq, packet.slice(start, stop));
      }
      return true;
    }
    const chunk = packet.subarray(start, stop); // the host copies it (StackHost.flowData)
    this.nxt = seqAdd(this.nxt, chunk.length);
    this.buffered += chunk.length;
    const parts: Uint8Array[] = [chunk];
    let filledHole = false;
    let joined = 0; // queued segments the hole's filling made contiguous, dropped at once below
    while (joined < this.#ooo.length && seqLe(this.#ooo[joined].seq, this.nxt)) {
      const next = this.#ooo[joined++];
      this.#oooBytes -= next.data.length;
      const skip = seqDiff(this.nxt, next.seq);
      if (skip < next.data.length) {
        const rest = next.data.subarray(skip);
        parts.push(rest);
        this.nxt = seqAdd(this.nxt, rest.length);
        this.buffered += rest.length;
      }
      filledHole = true;
    }
    if (joined > 0) this.#ooo.splice(0, joined);
    for (const part of parts) this.#deliver(part);
    return filledHole;
  }

  /**
   * Keeps an out-of-order segment in sequence order. Segments after a loss mostly arrive in
   * order, so the place is searched from the end (binary search), and a repeat is skipped.
   */
  #queueOutOfOrder(seq: number, data: Uint8Array): void {
    let low = 0;
    let high = this.#ooo.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (seqLt(this.#ooo[mid].seq, seq)) low = mid + 1;
      else high = mid;
    }
    if (low < this.#ooo.length && this.#ooo[low].seq === seq) return;
    if (low === this.#ooo.length) this.#ooo.push({ seq, data });
    else this.#ooo.splice(low, 0, { seq, data });
    this.#oooBytes += data.length;
  }

  /**
   * Takes a FIN at `seq` if it is in order (after the payload before it) and the first: it
   * occupies one sequence number (RFC 9293 §3.10.7.4, eighth step).
   */
  receiveFin(seq: number): boolean {
    if (seq !== this.nxt || this.finReceived) return false;
    this.finReceived = true;
    this.nxt = seqAdd(this.nxt, 1);
    return true;
  }

  /**
   * The relay consumed `n` bytes. The reopened window is announced at once when it crosses the
   * threshold (docs/tcp.md §4.4), with the next ACK when it grew by a quarter.
   */
  consumed(n: number): AckUrgency {
    const before = seqDiff(this.#adv, this.nxt);
    this.buffered = Math.max(0, this.buffered - n);
    const free = this.cap - this.buffered;
    const threshold = Math.min(this.cap >> 1, this.#mss);
    if (before < threshold && free - before >= threshold) return "now";
    return free - before >= this.cap >> 2 ? "later" : "none";
  }

  /** Drops the out-of-order queue (the connection closed). */
  clear(): void {
    this.#ooo = [];
    this.#oooBytes = 0;
  }
}
