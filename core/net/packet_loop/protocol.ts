/**
 * What the main thread and the packet-loop Worker tell each other. Packets never cross: flow
 * operations (main → Worker) and flow events (Worker → main) travel as records in two shared
 * rings (ring.ts); `postMessage` only starts the loop and reports how it ended.
 *
 * Wake-ups: the main thread signals the wake-up fd the Worker polls beside the TUN when the Worker
 * says it sleeps (busy-polling, it sees the ring without one); the Worker bumps the EVENTS signal
 * word, which the main thread awaits with `Atomics.waitAsync`. A full ring is
 * never an error: the producer keeps a backlog, raises its BACKLOG word, and the consumer wakes
 * it once it has made room.
 */
import { MAX_RECORD_PAYLOAD, type RingReader, type RingWriter } from "./ring.ts";
import type { FlowEnd, FlowId, FlowOpening, UdpDatagram } from "../stack_types.ts";
import type { PacketIoSpec } from "../device/tun_device.ts";
import type { DnsForwarding } from "./dns_forwarder.ts";

export { MAX_RECORD_PAYLOAD };

/** Start parameters (the one message the Worker receives). */
export interface LoopStart {
  type: "start";
  /** The device's end (the Worker imports `device.module` to open it). */
  device: PacketIoSpec;
  /** Polled beside the device: the main thread's wake-up (Wakeup in tun_device.ts). */
  wakeFd: number;
  /** Ring of operations, main → Worker. */
  ops: SharedArrayBuffer;
  /** Ring of events, Worker → main. */
  events: SharedArrayBuffer;
  /** The Int32 words indexed by {@link Signal}. */
  signals: SharedArrayBuffer;
  /** Where the loop records the sockets it opens (core/net/device/socket_registry.ts). */
  sockets: SharedArrayBuffer;
  network: { base: number; prefix: number };
  receiveBuffer: number;
  sendBuffer: number;
  idleTimeoutMs: number;
  /** How long the loop keeps polling without sleeping after activity (ms; 0 = never). */
  busyPollMs: number;
  /** StackOptions.acceptingMemoryMs: SYNs to destinations that accepted lately are answered. */
  acceptingMemoryMs: number;
  /** The host's IPv4 addresses: packets from any other source are dropped (local_sources.ts). */
  localAddresses: number[];
  /** StackOptions.udpPorts: the UDP ports served in the TUN; the loop refuses the others. */
  udpPorts: number[];
  /** Test hook: the loop fails this way once `afterMs` have passed (never set in production). */
  testFault?: LoopTestFault;
}

/**
 * A failure a test injects: `throw` breaks the loop (it reports "failed" and ends), `spin` makes
 * it stop taking turns — no heartbeat, no packets — until it is stopped, `hang` the same without
 * ever noticing the stop (only terminating the Worker ends it).
 */
export interface LoopTestFault {
  kind: "throw" | "spin" | "hang";
  afterMs: number;
}

/**
 * Worker → main thread, by `postMessage`. "stopped" and "failed" come after the loop closed its
 * end of the device and every socket it opened.
 */
export type FromLoop =
  /** Polling; `sockets`: it can dial and relay flows itself (the `connect` operation). */
  | { type: "ready"; sockets: boolean }
  | { type: "stopped" }
  | { type: "failed"; message: string }
  /** The first fault of its kind the loop contained (later ones are only counted). */
  | { type: "fault"; kind: string; message: string };

/** Indexes of the shared signal words. */
export const Signal = {
  /** Bumped by the Worker after publishing events; the main thread waits on it. */
  EVENTS: 0,
  /** The Worker holds events the ring had no room for: wake it after draining. */
  EVENTS_BACKLOG: 1,
  /** The main thread holds operations the ring had no room for: bump EVENTS after draining. */
  OPS_BACKLOG: 2,
  /** The main thread asks the loop to end. */
  STOP: 3,
  /** The loop is (about to be) asleep in `poll`: operations must come with a wake-up. */
  SLEEPING: 4,
  /**
   * Bumped by the loop at every turn, also when a `poll` times out (≤ 1 s when idle): the main
   * thread's watchdog (bridge/watchdog.ts) tells a stalled loop from an idle one by it.
   */
  HEARTBEAT: 5,
  /** Exceptions the loop contained (the flow concerned was reset). */
  FAULTS: 6,
  /** Packets dropped because their source is not an address of this host. */
  FOREIGN_DROPS: 7,
  /** Datagrams dropped because too many already waited for the main thread (datagram_quota.ts). */
  DATAGRAM_DROPS: 8,
} as const;
export const SIGNAL_WORDS = 9;

/** An operation on the stack, from the relay. */
export type LoopOp =
  | { op: "accept"; id: FlowId }
  | { op: "refuse"; id: FlowId }
  | { op: "send"; id: FlowId; data: Uint8Array }
  | { op: "consumed"; id: FlowId; n: number }
  | { op: "finish"; id: FlowId }
  | { op: "abort"; id: FlowId }
  | { op: "udp"; datagram: UdpDatagram }
  | { op: "route"; address: number; add: boolean }
  | { op: "local-addresses"; addresses: number[] }
  /** Dial the flow from the loop and relay it there (socket_relay.ts); see LoopDial. */
  | { op: "connect"; id: FlowId; dial: LoopDial }
  /** Forward the names no claim covers from the loop (dns_forwarder.ts); null: stop. */
  | { op: "dns-forwarding"; config: DnsForwarding | null };

/** A connection the loop opens for a flow: to `address:port`, then maybe a SOCKS5 CONNECT. */
export interface LoopDial {
  /** IPv4, host byte order. */
  address: number;
  port: number;
  /** Sent once connected: a SOCKS5 greeting and CONNECT, whose replies come before any data. */
  socks5?: Uint8Array;
}

/**
 * Why a dial from the loop failed: an errno (ECONNREFUSED, ETIMEDOUT, …), or
 * {@link SOCKS5_REPLY_BASE} plus the code of a SOCKS5 proxy's failure reply.
 */
export const SOCKS5_REPLY_BASE = 0x10000;

/** An event from the stack, for the relay. `data` payloads are at most MAX_RECORD_PAYLOAD. */
export type LoopEvent =
  | { ev: "open"; flow: FlowOpening }
  | { ev: "data"; id: FlowId; data: Uint8Array }
  | { ev: "eof"; id: FlowId }
  | { ev: "sent"; id: FlowId; n: number }
  | { ev: "closed"; id: FlowId; why: FlowEnd }
  | { ev: "udp"; datagram: UdpDatagram }
  /** A dial from the loop connected: the flow is accepted and relayed there. */
  | { ev: "connected"; id: FlowId }
  /** A dial from the loop failed (`code`: see {@link SOCKS5_REPLY_BASE}); the flow waits. */
  | { ev: "connect-failed"; id: FlowId; code: number }
  /** Bytes a flow relayed in the loop carried so far, each way (sent before its "closed"). */
  | { ev: "relayed"; id: FlowId; up: number; down: number }
  /**
   * A query the loop forwarded got its answer (`rcode`) or, NO_ANSWER, none; `micros`: how long it
   * took.
   */
  | { ev: "dns-forwarded"; rcode: number; micros: number };

const OP_KINDS = [
  "accept",
  "refuse",
  "send",
  "consumed",
  "finish",
  "abort",
  "udp",
  "route",
  "local-addresses",
  "connect",
  "dns-forwarding",
] as const;
const EVENT_KINDS = [
  "open",
  "data",
  "eof",
  "sent",
  "closed",
  "udp",
  "connected",
  "connect-failed",
  "relayed",
  "dns-forwarded",
] as const;
const FLOW_ENDS: readonly FlowEnd[] = ["closed", "reset", "timeout", "refused", "aborted"];
// Record kinds are 1-based: 0 marks the ring's padding records.
const opKind = (op: LoopOp["op"]) => OP_KINDS.indexOf(op) + 1;
const eventKind = (ev: LoopEvent["ev"]) => EVENT_KINDS.indexOf(ev) + 1;

/** Writes `op`; false when the ring is full. A `send` must carry ≤ MAX_RECORD_PAYLOAD bytes. */
export function pushOp(ring: RingWriter, op: LoopOp): boolean {
  const kind = opKind(op.op);
  switch (op.op) {
    case "send":
      return ring.push(kind, op.id, 0, [op.data]);
    case "consumed":
      return ring.push(kind, op.id, op.n);
    case "udp":
      return pushDatagram(ring, kind, op.datagram);
    case "route":
      return ring.push(kind, op.address, op.add ? 1 : 0);
    case "local-addresses": {
      const list = new Uint8Array(op.addresses.length * 4);
      const view = new DataView(list.buffer);
      op.addresses.forEach((address, i) => view.setUint32(i * 4, address, true));
      return ring.push(kind, op.addresses.length, 0, [list]);
    }
    case "connect": {
      const head = new Uint8Array([op.dial.port >> 8, op.dial.port & 0xff]);
      return ring.push(kind, op.id, op.dial.address, [head, op.dial.socks5 ?? new Uint8Array(0)]);
    }
    case "dns-forwarding":
      return ring.push(kind, 0, 0, op.config ? [encoder.encode(JSON.stringify(op.config))] : []);
    default:
      return ring.push(kind, op.id, 0);
  }
}

/**
 * Visits the published operations. A `send`'s data is a view into the ring, valid until this call
 * returns: copy what is kept.
 */
export function readOps(ring: RingReader, visit: (op: LoopOp) => void): number {
  return ring.drain((kind, a, b, payload) => {
    const op = OP_KINDS[kind - 1];
    switch (op) {
      case "send":
        return visit({ op, id: a, data: payload });
      case "consumed":
        return visit({ op, id: a, n: b });
      case "udp":
        return visit({ op, datagram: readDatagram(a, b, payload) });
      case "route":
        return visit({ op, address: a, add: b === 1 });
      case "local-addresses": {
        const view = new DataView(payload.buffer, payload.byteOffset, payload.length);
        const count = Math.min(a, payload.length >> 2);
        const addresses = Array.from({ length: count }, (_, i) => view.getUint32(i * 4, true));
        return visit({ op, addresses });
      }
      case "connect": {
        if (payload.length < 2) return; // not one we wrote
        const socks5 = payload.length > 2 ? payload.slice(2) : undefined;
        return visit({
          op,
          id: a,
          dial: { address: b, port: (payload[0] << 8) | payload[1], socks5 },
        });
      }
      case "dns-forwarding":
        // Written by the main thread only; a record that does not parse stops forwarding.
        return visit({
          op,
          config: payload.length > 0 ? parseJson(decoder.decode(payload)) as DnsForwarding : null,
        });
      default:
        return visit({ op, id: a });
    }
  });
}

/** Writes `event`; false when the ring is full. */
export function pushEvent(ring: RingWriter, event: LoopEvent): boolean {
  const kind = eventKind(event.ev);
  switch (event.ev) {
    case "open": {
      const { flow } = event;
      const addresses = new Uint8Array(12);
      const view = new DataView(addresses.buffer);
      view.setUint32(0, flow.srcAddress, true);
      view.setUint32(4, flow.dstAddress, true);
      view.setUint16(8, flow.srcPort, true);
      view.setUint16(10, flow.dstPort, true);
      return ring.push(kind, flow.id, 0, [addresses]);
    }
    case "data":
      return ring.push(kind, event.id, 0, [event.data]);
    case "sent":
      return ring.push(kind, event.id, event.n);
    case "closed":
      return ring.push(kind, event.id, FLOW_ENDS.indexOf(event.why));
    case "udp":
      return pushDatagram(ring, kind, event.datagram);
    case "eof":
    case "connected":
      return ring.push(kind, event.id, 0);
    case "connect-failed":
      return ring.push(kind, event.id, event.code);
    case "relayed": {
      const counts = new Float64Array([event.up, event.down]);
      return ring.push(kind, event.id, 0, [new Uint8Array(counts.buffer)]);
    }
    case "dns-forwarded":
      return ring.push(kind, event.rcode, event.micros);
  }
}

/**
 * Visits the published events, then calls `beforeFree`. Data and datagram payloads are views
 * into the ring, valid until `beforeFree` returns: copy what is kept.
 */
export function readEvents(
  ring: RingReader,
  visit: (event: LoopEvent) => void,
  beforeFree?: () => void,
): number {
  return ring.drain((kind, a, b, payload) => {
    const ev = EVENT_KINDS[kind - 1];
    switch (ev) {
      case "open": {
        const view = new DataView(payload.buffer, payload.byteOffset, payload.length);
        return visit({
          ev,
          flow: {
            id: a,
            srcAddress: view.getUint32(0, true),
            dstAddress: view.getUint32(4, true),
            srcPort: view.getUint16(8, true),
            dstPort: view.getUint16(10, true),
          },
        });
      }
      case "data":
        return visit({ ev, id: a, data: payload });
      case "sent":
        return visit({ ev, id: a, n: b });
      case "closed":
        return visit({ ev, id: a, why: FLOW_ENDS[b] });
      case "udp":
        return visit({ ev, datagram: readDatagram(a, b, payload) });
      case "eof":
      case "connected":
        return visit({ ev, id: a });
      case "connect-failed":
        return visit({ ev, id: a, code: b });
      case "relayed": {
        const view = new DataView(payload.buffer, payload.byteOffset, payload.length);
        return visit({ ev, id: a, up: view.getFloat64(0, true), down: view.getFloat64(8, true) });
      }
      case "dns-forwarded":
        return visit({ ev, rcode: a, micros: b });
    }
  }, beforeFree);
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/** A datagram record: a = source address, b = destination, payload = ports and data. */
function pushDatagram(ring: RingWriter, kind: number, datagram: UdpDatagram): boolean {
  const ports = new Uint8Array(4);
  new DataView(ports.buffer).setUint32(0, (datagram.srcPort << 16 | datagram.dstPort) >>> 0);
  return ring.push(kind, datagram.srcAddress, datagram.dstAddress, [ports, datagram.payload]);
}

function readDatagram(src: number, dst: number, payload: Uint8Array): UdpDatagram {
  return {
    srcAddress: src,
    srcPort: (payload[0] << 8) | payload[1],
    dstAddress: dst,
    dstPort: (payload[2] << 8) | payload[3],
    payload: payload.subarray(4),
  };
}
