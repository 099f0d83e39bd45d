/**
 * The contract between the TCP/IP stack (pure: packets in, packets and relay events out) and the
 * packet loop that owns it (the Worker doing TUN I/O). The stack never does I/O or reads clocks;
 * its owner passes `now` (milliseconds, monotonic) into every call.
 */

import type { Offload } from "./wire/virtio.ts";
import type { CopyBytes } from "./copy.ts";

/** Identifies one TCP flow inside a stack. */
export type FlowId = number;

/** A new connection the application opened towards a routed address (a SYN arrived). */
export interface FlowOpening {
  id: FlowId;
  /** Application side (the kernel's socket): IPv4, host-order u32 (formatted only for people). */
  srcAddress: number;
  srcPort: number;
  /** The routed destination (VIP): IPv4, host-order u32. */
  dstAddress: number;
  dstPort: number;
}

/** A UDP datagram addressed to a routed address (e.g. DNS in tun_route mode). */
export interface UdpDatagram {
  /** IPv4, host-order u32, as both addresses. */
  srcAddress: number;
  srcPort: number;
  dstAddress: number;
  dstPort: number;
  payload: Uint8Array;
}

/** A UDP service inside the TUN (DNS): the ports it serves at every routed address, and how. */
export interface UdpService {
  /** Datagrams to these ports go to `handle`; the packet loop refuses the rest (ICMP). */
  ports: readonly number[];
  /** One datagram; `reply` sends one back. */
  handle(datagram: UdpDatagram, reply: (datagram: UdpDatagram) => void): void;
  /**
   * The packet loop answered a datagram itself (DNS it forwarded: core/net/packet_loop/
   * dns_forwarder.ts): its rcode (0xffff: none came) and how long it took, for the counts.
   */
  answeredInLoop?(rcode: number, micros: number): void;
}

/** Why a flow ended. */
export type FlowEnd = "closed" | "reset" | "timeout" | "refused" | "aborted";

/** Callbacks from the stack to its owner. Called synchronously from `input`/`poll`/API calls. */
export interface StackHost {
  /**
   * A packet to write to the TUN, and what the kernel must finish for it (with offload). The
   * buffer may be reused after the call returns, so the owner writes it synchronously or copies
   * it. The VNET_HEADER_LENGTH bytes before `packet` in its buffer are headroom the owner may
   * overwrite (with the virtio header, so the write needs no copy).
   */
  transmit(packet: Uint8Array, offload: Offload): void;
  /**
   * A SYN arrived for a new flow. The stack sends nothing until the owner calls `accept(id)`
   * (SYN-ACK) or `refuse(id)` (RST): dial first, then complete the handshake. Two cases answer
   * first instead: a SYN to a destination whose last dial succeeded recently
   * ({@link StackOptions.acceptingMemoryMs}), and past the half-open limits, a SYN cookie validated
   * by the app's ACK. Then the app is connected already, its data waits in the stack until
   * `accept(id)`, and `refuse(id)` resets the connection. `answered` says which: true when the
   * app has its SYN-ACK already.
   */
  flowOpening(flow: FlowOpening, answered: boolean): void;
  /**
   * In-order payload from the application: a view valid during the call only (often into the
   * packet just read), so the host copies what it keeps. These bytes occupy the flow's receive
   * window until the host calls `consumed(id, n)`.
   */
  flowData(id: FlowId, data: Uint8Array): void;
  /** The application half-closed (FIN received, all data before it delivered). */
  flowEof(id: FlowId): void;
  /** Send buffer space became available again after `send` accepted fewer bytes than offered. */
  flowWritable(id: FlowId): void;
  /** The flow is gone (its state freed). Not called for flows the host refused. */
  flowClosed(id: FlowId, why: FlowEnd): void;
  /** A UDP datagram arrived for a routed address; its payload is a copy, the host's to keep. */
  udp(datagram: UdpDatagram): void;
}

/** Stack configuration. */
export interface StackOptions {
  /** MTU of the TUN; MSS = MTU − 40. */
  mtu: number;
  /** Whether the stack answers for this IPv4 destination (host byte order u32). */
  isRouted(address: number): boolean;
  /** Per-flow receive buffer (bytes delivered but not yet consumed by the relay). */
  receiveBuffer: number;
  /** Per-flow send buffer (bytes accepted from the relay but not yet acknowledged by the app). */
  sendBuffer: number;
  /** Close flows idle this long (0 = never). */
  idleTimeoutMs: number;
  /**
   * The TUN offloads checksums and segmentation (IFF_VNET_HDR, virtio.ts): TCP checksums are
   * left to the kernel and data segments of up to 64 KiB are emitted for it to cut.
   */
  offload?: boolean;
  /**
   * Copies `src` into the start of `dst` for the send buffers (default `set`). The packet loop
   * passes libc's memcpy: its bytes come from shared memory, which V8 copies slowly.
   */
  copy?: CopyBytes;
  /**
   * The most connections in SYN-RECEIVED at once (dial in progress, or dialed and waiting for
   * the app's final ACK), so spoofed SYNs cannot open unbounded dials (RFC 4987 §3); further
   * SYNs are answered with SYN cookies, which dial only once the app's ACK brings the cookie
   * back. Connections opened that way whose dial is running are bounded by the same number.
   * Default 512.
   */
  maxHalfOpen?: number;
  /** The same limit per source address (default: the total; dial_admission.ts explains why). */
  maxHalfOpenPerSource?: number;
  /**
   * How long a successful dial lets new connections to the same address and port get their
   * SYN-ACK before their own dial answers (accepting_destinations.ts; default 30 s, 0 = always
   * dial first).
   */
  acceptingMemoryMs?: number;
  /**
   * The UDP ports the host serves (StackHost.udp), at every routed address. A datagram to any
   * other port is answered with ICMP port unreachable, so the app's socket fails at once instead
   * of waiting out its timeout (RFC 1122 §4.1.3.1); at most 1,000 such replies a second. Absent:
   * every datagram goes to the host.
   */
  udpPorts?: ReadonlySet<number>;
}

/** What the owner can do with the stack. */
export interface Stack {
  /** Processes one IPv4 packet read from the TUN. Malformed input is dropped, never thrown. */
  input(packet: Uint8Array, now: number, checksumTrusted?: boolean): void;
  /** Runs timers (retransmit, persist, delayed ACK, TIME_WAIT, idle). Returns the next deadline. */
  poll(now: number): number | undefined;
  /** Completes the handshake of a flow announced by `flowOpening`. */
  accept(id: FlowId, now: number): void;
  /** Rejects a flow announced by `flowOpening` with RST (the app sees ECONNREFUSED). */
  refuse(id: FlowId, now: number): void;
  /**
   * Queues a copy of bytes towards the application; returns how many were accepted
   * (backpressure). `data` may be reused once this returns.
   */
  send(id: FlowId, data: Uint8Array, now: number): number;
  /** The host consumed `n` bytes of `flowData`: the receive window reopens by `n`. */
  consumed(id: FlowId, n: number, now: number): void;
  /** Half-closes towards the application (FIN after queued data). */
  finish(id: FlowId, now: number): void;
  /** Resets the flow (RST to the application); a dialer error mid-stream ends up here. */
  abort(id: FlowId, now: number): void;
  /** Sends a UDP datagram to the application (source = a routed address). */
  sendUdp(datagram: UdpDatagram, now: number): void;
  /** Number of flows with state (for leak checks and the API). */
  flowCount(): number;
}
