/**
 * The TCP/IP stack k8stun terminates the kernel's connections in: IPv4 in, demultiplexed to TCP
 * connections, UDP delivery and ICMP echo; segments out through the host's `transmit`. Pure: no
 * I/O and no clock of its own (the owner passes `now`), so tests drive it with literal packets.
 */
import { TcpConnection } from "./tcp/connection.ts";
import { unscaledWindow } from "./tcp/receiver.ts";
import { SynCookies } from "./tcp/syn_cookie.ts";
import type { ConnectionConfig, SegmentOut, SegmentSink } from "./tcp/connection.ts";
import type { FlowId, Stack, StackHost, StackOptions, UdpDatagram } from "./stack_types.ts";
import { IPV4_HEADER_LENGTH, parseIpv4, PROTO_ICMP, PROTO_TCP, PROTO_UDP } from "./wire/ipv4.ts";
import { ACK, emitTcp, FIN, parseTcp, RST, SYN, type TcpOut, type TcpRepr } from "./wire/tcp.ts";
import { emitUdp, parseUdp } from "./wire/udp.ts";
import { emitEchoReply, emitPortUnreachable } from "./wire/icmp.ts";
import { TokenBucket } from "./token_bucket.ts";
import { type Offload, VNET_HEADER_LENGTH } from "./wire/virtio.ts";
import { TimerQueue } from "./timer_queue.ts";
import { FlowTable } from "./flow_table.ts";
import { DialAdmission } from "./dial_admission.ts";
import { AcceptingDestinations } from "./accepting_destinations.ts";
import { seqAdd } from "./tcp/seq.ts";

/** The largest IPv4 packet: a TCP super-packet with offload. */
const MAX_PACKET = 65535;
const NO_OFFLOAD: Offload = { kind: "none" };

/** Counters for the API and tests. */
export interface StackStats {
  packetsIn: number;
  packetsOut: number;
  dropped: number;
  flows: number;
  /** SYNs answered with a SYN cookie because the half-open limits were reached (SYN flood). */
  synCookiesSent: number;
  /** ACKs for unknown connections that brought a valid cookie back: connections opened. */
  synCookiesValidated: number;
  /** ACKs for unknown connections, while cookies were out, whose cookie did not verify. */
  synCookiesRejected: number;
  /** Inputs that threw inside the stack and were dropped: a bug, so always 0. */
  faults: number;
  /** UDP datagrams to a port nothing serves (StackOptions.udpPorts), each refused by ICMP. */
  udpRefused: number;
  /** Of those, the ones left without an ICMP reply by the rate limit (a flood). */
  icmpLimited: number;
}

/** ICMP errors sent at most, per second and at once (Linux's defaults, RFC 1812 §4.3.2.8). */
const ICMP_ERRORS_PER_SECOND = 1000;
const ICMP_ERROR_BURST = 50;

/** The stack. */
export class NetStack implements Stack {
  readonly #host: StackHost;
  readonly #options: StackOptions;
  readonly #byTuple = new FlowTable<TcpConnection>();
  readonly #byId = new Map<FlowId, TcpConnection>();
  readonly #timers = new TimerQueue<TcpConnection>();
  /** Connections this turn touched: their ACKs and timers are settled in the next poll. */
  readonly #touched = new Set<TcpConnection>();
  /** Half-open and cookie-opened dials, bounded against SYN floods (dial_admission.ts). */
  readonly #admission: DialAdmission<TcpConnection>;
  /**
   * SYNs past the half-open limits are answered with a SYN cookie: no state and no dial until
   * the app's final ACK proves it received our SYN-ACK (syn_cookie.ts).
   */
  readonly #cookies = SynCookies.withRandomKey();
  /** Destinations whose dials succeed: their SYNs are answered before the dial (§3.1). */
  readonly #accepting: AcceptingDestinations;
  readonly #out: Uint8Array;
  readonly #sink: SegmentSink;
  /** What every connection is configured with (read-only, shared). */
  readonly #config: ConnectionConfig;
  #nextId = 1;
  #ipId = 1;
  readonly stats: StackStats = {
    packetsIn: 0,
    packetsOut: 0,
    dropped: 0,
    flows: 0,
    synCookiesSent: 0,
    synCookiesValidated: 0,
    synCookiesRejected: 0,
    faults: 0,
    udpRefused: 0,
    icmpLimited: 0,
  };
  readonly #icmpErrors = new TokenBucket(ICMP_ERRORS_PER_SECOND, ICMP_ERROR_BURST);

  constructor(host: StackHost, options: StackOptions) {
    this.#host = host;
    this.#options = options;
    this.#admission = new DialAdmission(options.maxHalfOpen, options.maxHalfOpenPerSource);
    this.#accepting = new AcceptingDestinations(options.acceptingMemoryMs);
    this.#config = {
      mss: options.mtu - 40,
      segmentOffload: options.offload === true,
      receiveBuffer: options.receiveBuffer,
      sendBuffer: options.sendBuffer,
      idleTimeoutMs: options.idleTimeoutMs,
      copy: options.copy,
    };
    // Headroom for the virtio header before every packet (StackHost.transmit).
    const size = options.offload ? MAX_PACKET : Math.max(options.mtu, 1500) + 64;
    this.#out = new Uint8Array(VNET_HEADER_LENGTH + size).subarray(VNET_HEADER_LENGTH);
    this.#sink = {
      transmit: (_conn, segment) => this.#transmitSegment(segment),
      data: (conn, payload) => this.#host.flowData(conn.id, payload),
      eof: (conn) => this.#host.flowEof(conn.id),
      writable: (conn) => this.#host.flowWritable(conn.id),
      closed: (conn, why) => this.#remove(conn, why),
    };
  }

  input(packet: Uint8Array, now: number, checksumTrusted = false): void {
    this.stats.packetsIn++;
    try {
      this.#input(packet, now, !checksumTrusted);
    } catch {
      // Every wire field is bounded before use, so nothing here should throw; if a bug lets
      // something through, the packet is dropped and counted instead of ending the packet loop.
      this.stats.faults++;
      this.stats.dropped++;
    }
  }

  #input(packet: Uint8Array, now: number, verify: boolean): void {
    const ip = parseIpv4(packet, packet.length);
    if (!ip || ip.fragment || !this.#options.isRouted(ip.dst)) {
      this.stats.dropped++;
      return;
    }
    if (ip.protocol === PROTO_TCP) {
      const seg = parseTcp(packet, ip.headerLength, ip.totalLength, ip.src, ip.dst, verify);
      if (!seg) {
        this.stats.dropped++;
        return;
      }
      this.#tcp(ip.src, ip.dst, seg, packet, now);
    } else if (ip.protocol === PROTO_UDP) {
      const udp = parseUdp(packet, ip.headerLength, ip.totalLength, ip.src, ip.dst, verify);
      if (!udp) {
        this.stats.dropped++;
        return;
      }
      if (this.#options.udpPorts && !this.#options.udpPorts.has(udp.dstPort)) {
        this.#refuseUdp(packet, ip.totalLength, ip.src, ip.dst, now);
        return;
      }
      this.#host.udp({
        srcAddress: ip.src,
        srcPort: udp.srcPort,
        dstAddress: ip.dst,
        dstPort: udp.dstPort,
        payload: packet.slice(udp.payloadOffset, udp.payloadOffset + udp.payloadLength),
      });
    } else if (ip.protocol === PROTO_ICMP) {
      const length = emitEchoReply(
        this.#out,
        packet,
        ip.headerLength,
        ip.totalLength,
        ip.src,
        ip.dst,
      );
      if (length > 0) this.#transmit(length);
      else this.stats.dropped++;
    } else {
      this.stats.dropped++;
    }
  }

  /** A datagram to a port nothing serves: port unreachable, unless the rate limit says no. */
  #refuseUdp(packet: Uint8Array, totalLength: number, src: number, dst: number, now: number): void {
    this.stats.udpRefused++;
    if (!this.#icmpErrors.take(now)) {
      this.stats.icmpLimited++;
      return;
    }
    const length = emitPortUnreachable(this.#out, packet, totalLength, src, dst);
    if (length > 0) this.#transmit(length);
  }

  #tcp(src: number, dst: number, seg: TcpRepr, packet: Uint8Array, now: number): void {
    let conn = this.#byTuple.get(src, seg.srcPort, dst, seg.dstPort);
    if (conn && (seg.flags & (SYN | ACK | RST)) === SYN) {
      if (conn.isSameSyn(seg)) {
        conn.duplicateSyn(now); // docs/tcp.md §3.2
        this.#touched.add(conn);
        return;
      }
      if (conn.state === "TIME_WAIT" || conn.state === "CLOSED") {
        this.#remove(conn, "closed"); // docs/tcp.md §6.3: a new SYN replaces the entry
        conn = undefined;
      }
    }
    if (!conn) {
      if (seg.flags & RST) return; // docs/tcp.md §6.5 (d)
      if ((seg.flags & (SYN | ACK)) === SYN) {
        if (seg.flags & FIN) {
          this.stats.dropped++; // SYN+FIN is no connection request (Linux drops it too)
        } else if (this.#admission.admitsSyn(src)) {
          this.#open(src, dst, seg, now);
        } else {
          this.#sendSynCookie(src, dst, seg, now);
        }
        return;
      }
      if ((seg.flags & ACK) && !(seg.flags & SYN) && this.#cookies.recentlyIssued(now)) {
        const mss = this.#cookies.check(
          { src, srcPort: seg.srcPort, dst, dstPort: seg.dstPort },
          seqAdd(seg.seq, -1),
          seqAdd(seg.ack, -1),
          now,
        );
        if (mss !== undefined) {
          this.stats.synCookiesValidated++;
          this.#openFromCookie(src, dst, seg, mss, packet, now);
          return;
        }
        this.stats.synCookiesRejected++;
      }
      this.#resetUnknown(src, dst, seg); // docs/tcp.md §6.5 (c), §6.6
      return;
    }
    conn.onSegment(seg, packet, now);
    if (conn.state !== "SYN_RECEIVED") this.#admission.leaveHalfOpen(conn);
    this.#touched.add(conn);
  }

  /**
   * Answers a SYN past the half-open limits with a SYN-ACK whose ISN is a cookie, remembering
   * nothing and dialing nothing (RFC 4987 §3.6): spoofed SYNs cost one segment each. It offers
   * no window scaling: the cookie cannot carry the app's shift (syn_cookie.ts).
   */
  #sendSynCookie(src: number, dst: number, syn: TcpRepr, now: number): void {
    const tuple = { src, srcPort: syn.srcPort, dst, dstPort: syn.dstPort };
    this.stats.synCookiesSent++;
    this.#sendTcp({
      src: dst,
      dst: src,
      srcPort: syn.dstPort,
      dstPort: syn.srcPort,
      seq: this.#cookies.issue(tuple, syn.seq, syn.mss, now),
      ack: seqAdd(syn.seq, 1),
      flags: SYN | ACK,
      window: unscaledWindow(this.#options.receiveBuffer),
      mss: this.#config.mss,
    }, 0);
  }

  /**
   * The app's ACK brought a valid cookie back: the connection it completed is created now, and
   * only now dialed. The ACK (and any data or FIN on it) is processed as by any connection; data
   * waits for the dial (TcpConnection.accept). With the cookie dials at their limit the ACK is
   * dropped unanswered: the app's kernel retransmits it, or the data after it, with the same
   * cookie, and it gets in once a dial completes.
   */
  #openFromCookie(
    src: number,
    dst: number,
    ack: TcpRepr,
    mss: number,
    packet: Uint8Array,
    now: number,
  ): void {
    if (!this.#admission.admitsAnsweredDial()) {
      this.stats.dropped++;
      return;
    }
    // The SYN the cookie stands for: the app's ISN and the MSS it carried; no window scaling.
    const syn: TcpRepr = {
      ...ack,
      seq: seqAdd(ack.seq, -1),
      ack: 0,
      flags: SYN,
      mss,
      windowScale: undefined,
      payloadLength: 0,
    };
    const conn = this.#create(src, dst, syn, now, seqAdd(ack.ack, -1));
    this.#admission.enterAnsweredDial(conn);
    this.#announce(conn, true);
    conn.onSegment(ack, packet, now);
  }

  /**
   * A SYN within the limits: dial first, then SYN-ACK (docs/tcp.md §3.1) — or, to a destination
   * whose dials succeed, the SYN-ACK at once while the dial runs.
   */
  #open(src: number, dst: number, syn: TcpRepr, now: number): void {
    const conn = this.#create(src, dst, syn, now);
    this.#admission.enterHalfOpen(conn);
    const answer = this.#accepting.has(dst, syn.dstPort, now) &&
      this.#admission.admitsAnsweredDial();
    if (answer) {
      this.#admission.enterAnsweredDial(conn);
      conn.answerBeforeDial(now);
    }
    this.#announce(conn, answer);
  }

  /** A connection for `syn`, registered; `synCookie`: the ISN its SYN-ACK already had. */
  #create(
    src: number,
    dst: number,
    syn: TcpRepr,
    now: number,
    synCookie?: number,
  ): TcpConnection {
    const id = this.#nextId++;
    const conn = new TcpConnection({
      id,
      local: { address: dst, port: syn.dstPort },
      remote: { address: src, port: syn.srcPort },
      syn,
      config: this.#config,
      sink: this.#sink,
      now,
      synCookie,
    });
    this.#byTuple.set(conn);
    this.#byId.set(id, conn);
    this.#touched.add(conn);
    this.stats.flows = this.#byId.size;
    return conn;
  }

  /** Asks the owner to dial: it answers with accept() or refuse(). */
  #announce(conn: TcpConnection, answered: boolean): void {
    this.#host.flowOpening({
      id: conn.id,
      srcAddress: conn.remote.address,
      srcPort: conn.remote.port,
      dstAddress: conn.local.address,
      dstPort: conn.local.port,
    }, answered);
  }

  #resetUnknown(src: number, dst: number, seg: TcpRepr): void {
    const length = seg.payloadLength + (seg.flags & SYN ? 1 : 0) + (seg.flags & FIN ? 1 : 0);
    const out = {
      src: dst,
      dst: src,
      srcPort: seg.dstPort,
      dstPort: seg.srcPort,
      window: 0,
    };
    this.#sendTcp(
      seg.flags & ACK
        ? { ...out, seq: seg.ack, ack: 0, flags: RST }
        : { ...out, seq: 0, ack: (seg.seq + length) >>> 0, flags: RST | ACK },
      0,
    );
  }

  /** Transmits a connection's segment. */
  #transmitSegment(segment: SegmentOut): void {
    const payload = segment.payload;
    if (payload) payload.buffer.copy(payload.offset, payload.length, this.#out, 40);
    this.#sendTcp(segment.header, payload?.length ?? 0, segment.mss);
  }

  /**
   * Builds a TCP packet in the output buffer (a payload already at offset 40) and transmits it.
   * With offload the kernel finishes the checksum, and cuts a payload over `mss` into segments.
   */
  #sendTcp(seg: TcpOut, payloadLength: number, mss?: number): void {
    const offload = this.#options.offload === true;
    const length = emitTcp(this.#out, seg, payloadLength, this.#ipId, offload);
    this.#ipId = (this.#ipId + 1) & 0xffff;
    const headerLength = length - payloadLength;
    this.#transmit(
      length,
      !offload
        ? NO_OFFLOAD
        : mss !== undefined && payloadLength > mss
        ? { kind: "tso", ipHeaderLength: IPV4_HEADER_LENGTH, headerLength, mss }
        : { kind: "csum", ipHeaderLength: IPV4_HEADER_LENGTH },
    );
  }

  #transmit(length: number, offload: Offload = NO_OFFLOAD): void {
    this.stats.packetsOut++;
    this.#host.transmit(this.#out.subarray(0, length), offload);
  }

  poll(now: number): number | undefined {
    for (const conn of this.#touched) this.#settle(conn, now);
    this.#touched.clear();
    const due: TcpConnection[] = [];
    this.#timers.popDue(now, (conn) => due.push(conn));
    for (const conn of due) {
      if (this.#byId.get(conn.id) !== conn) continue;
      conn.onTimer(now);
      this.#settle(conn, now);
    }
    return this.#timers.next();
  }

  /** Sends a connection's pending ACK and (re)arms its timer, unless it is gone. */
  #settle(conn: TcpConnection, now: number): void {
    if (this.#byId.get(conn.id) !== conn) return;
    this.#timers.schedule(conn, conn.settle(now));
  }

  accept(id: FlowId, now: number): void {
    const conn = this.#touch(id);
    if (!conn) return;
    this.#admission.dialDone(conn);
    this.#accepting.accepted(conn.local.address, conn.local.port, now);
    conn.accept(now);
  }

  refuse(id: FlowId, _now: number): void {
    const conn = this.#byId.get(id);
    if (!conn || conn.accepted) return;
    this.#accepting.refused(conn.local.address, conn.local.port);
    conn.refuse();
    this.#forget(conn);
  }

  send(id: FlowId, data: Uint8Array, now: number): number {
    return this.#touch(id)?.send(data, now) ?? 0;
  }

  consumed(id: FlowId, n: number, _now: number): void {
    this.#touch(id)?.consumed(n);
  }

  finish(id: FlowId, now: number): void {
    this.#touch(id)?.finish(now);
  }

  /** The connection `id`, marked for settling in the next poll. */
  #touch(id: FlowId): TcpConnection | undefined {
    const conn = this.#byId.get(id);
    if (conn) this.#touched.add(conn);
    return conn;
  }

  abort(id: FlowId, _now: number): void {
    const conn = this.#byId.get(id);
    if (!conn) return;
    conn.abort();
    this.#forget(conn);
  }

  sendUdp(datagram: UdpDatagram, _now: number): void {
    const length = emitUdp(
      this.#out,
      datagram.srcAddress,
      datagram.dstAddress,
      datagram.srcPort,
      datagram.dstPort,
      datagram.payload,
      this.#ipId++ & 0xffff,
    );
    if (length > 0) this.#transmit(length);
    else this.stats.dropped++;
  }

  flowCount(): number {
    return this.#byId.size;
  }

  #remove(conn: TcpConnection, why: "closed" | "reset" | "timeout" | "aborted"): void {
    if (!this.#byId.has(conn.id)) return;
    this.#forget(conn);
    this.#host.flowClosed(conn.id, why);
  }

  #forget(conn: TcpConnection): void {
    this.#admission.forget(conn);
    this.#byTuple.delete(conn);
    this.#byId.delete(conn.id);
    this.stats.flows = this.#byId.size;
  }
}
