/**
 * Messages between the main thread and the packet-loop Worker. Packets never cross: only flow
 * events and relay data, batched per loop iteration, with payload buffers transferred.
 */
import type { FlowEnd, FlowId, FlowOpening, UdpDatagram } from "../stack_types.ts";

/** Start parameters. */
export interface LoopStart {
  type: "start";
  tunFd: number;
  wakeFd: number;
  mtu: number;
  /** The TUN carries virtio headers and offloads (see core/net/wire/virtio.ts). */
  vnetHeader: boolean;
  network: { base: number; prefix: number };
  receiveBuffer: number;
  sendBuffer: number;
  idleTimeoutMs: number;
}

/** An operation on the stack, from the relay. */
export type LoopOp =
  | { op: "accept"; id: FlowId }
  | { op: "refuse"; id: FlowId }
  | { op: "send"; id: FlowId; data: Uint8Array }
  | { op: "consumed"; id: FlowId; n: number }
  | { op: "finish"; id: FlowId }
  | { op: "abort"; id: FlowId }
  | { op: "udp"; datagram: UdpDatagram }
  | { op: "route"; address: number; add: boolean };

/** Main thread → Worker. */
export type ToLoop = LoopStart | { type: "ops"; ops: LoopOp[] } | { type: "stop" };

/** An event from the stack, for the relay. */
export type LoopEvent =
  | { ev: "open"; flow: FlowOpening }
  | { ev: "data"; id: FlowId; data: Uint8Array }
  | { ev: "eof"; id: FlowId }
  | { ev: "sent"; id: FlowId; n: number }
  | { ev: "closed"; id: FlowId; why: FlowEnd }
  | { ev: "udp"; datagram: UdpDatagram };

/** Worker → main thread. */
export type FromLoop =
  | { type: "events"; events: LoopEvent[] }
  | { type: "stats"; flows: number; packetsIn: number; packetsOut: number; dropped: number }
  | { type: "stopped" }
  | { type: "failed"; message: string };
