/** Builds the packets an application's kernel would send, for stack tests. */
import { ACK, emitTcp, SYN, type TcpOut } from "../../core/net/wire/tcp.ts";
import { parseIpv4, parseIpv4Address } from "../../core/net/wire/ipv4.ts";
import { parseTcp, type TcpRepr } from "../../core/net/wire/tcp.ts";
import { NetStack } from "../../core/net/stack.ts";
import type {
  FlowId,
  FlowOpening,
  StackHost,
  StackOptions,
  UdpDatagram,
} from "../../core/net/stack_types.ts";
import type { Offload } from "../../core/net/wire/virtio.ts";

export const APP = parseIpv4Address("198.18.0.1");
export const VIP = parseIpv4Address("198.18.0.2");

/** A TCP segment from the app to the VIP. */
export function appSegment(fields: Partial<TcpOut> & { payload?: Uint8Array }): Uint8Array {
  const out = new Uint8Array(2048);
  const payload = fields.payload ?? new Uint8Array(0);
  const optionsLength = (fields.mss !== undefined ? 4 : 0) +
    (fields.windowScale !== undefined ? 4 : 0);
  out.set(payload, 40 + optionsLength);
  const length = emitTcp(out, {
    src: APP,
    dst: VIP,
    srcPort: 40000,
    dstPort: 80,
    seq: 1000,
    ack: 0,
    flags: 0,
    window: 65535,
    ...fields,
  }, payload.length);
  return out.slice(0, length);
}

/** A segment the stack sent, parsed (its checksum verified unless `verify` is false). */
export function parseOut(packet: Uint8Array, verify = true): TcpRepr & { payload: Uint8Array } {
  const ip = parseIpv4(packet, packet.length)!;
  const tcp = parseTcp(packet, ip.headerLength, ip.totalLength, ip.src, ip.dst, verify)!;
  return {
    ...tcp,
    payload: packet.slice(tcp.payloadOffset, tcp.payloadOffset + tcp.payloadLength),
  };
}

/** Thrown by a test stack's host when a call emits more segments than its budget allows. */
export class RunawayError extends Error {}

/** Stack options a test may set; the rest get test defaults. */
export type TestStackOptions = Partial<Omit<StackOptions, "isRouted" | "copy">>;

/**
 * A stack with a recording host. `budget(n)` makes the host throw {@link RunawayError} once `n`
 * more packets are transmitted (and remember that it did): a stack call stuck in a loop that
 * emits segments ends there instead of hanging the test.
 */
export function testStack(options: TestStackOptions = {}) {
  const sent: Uint8Array[] = [];
  const guard = { left: Infinity, tripped: false };
  const offloads: Offload[] = [];
  const opened: FlowOpening[] = [];
  const data = new Map<FlowId, Uint8Array[]>();
  const eofs: FlowId[] = [];
  const closed: [FlowId, string][] = [];
  const udp: UdpDatagram[] = [];
  const host: StackHost = {
    transmit: (p, offload) => {
      if (--guard.left < 0) {
        guard.tripped = true;
        throw new RunawayError("the stack kept transmitting past the test's budget");
      }
      sent.push(p.slice());
      offloads.push(offload);
    },
    flowOpening: (f) => opened.push(f),
    flowData: (id, d) => data.set(id, [...(data.get(id) ?? []), d.slice()]),
    flowEof: (id) => eofs.push(id),
    flowWritable: () => {},
    flowClosed: (id, why) => closed.push([id, why]),
    udp: (d) => udp.push(d),
  };
  const stack = new NetStack(host, {
    mtu: 1500,
    receiveBuffer: 256 * 1024,
    sendBuffer: 256 * 1024,
    idleTimeoutMs: 0,
    // a key given as undefined keeps its default
    ...Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)),
    isRouted: (a) => (a >>> 16) === (VIP >>> 16),
  });
  /** Allows `packets` more transmissions before the host throws RunawayError. */
  const budget = (packets: number) => {
    guard.left = packets;
  };
  /** Whether a budget was ever exceeded (also when the stack caught the error). */
  const ranAway = () => guard.tripped;
  return { stack, sent, offloads, opened, data, eofs, closed, udp, budget, ranAway };
}

/**
 * A stack with one connection through the handshake: the app's SYN (MSS, window scale), the
 * dial accepted, and the app's final ACK advertising `window` (in units of its scale). What was
 * sent so far is cleared.
 */
export function establishedStack(
  options: TestStackOptions & Partial<{ mss: number; windowScale: number; window: number }> = {},
) {
  const { mss: _, windowScale = 7, window = 512, ...stackOptions } = options;
  const mss = "mss" in options ? options.mss : 1460; // given as undefined: no MSS option
  const t = testStack(stackOptions);
  t.stack.input(appSegment({ flags: SYN, seq: 1000, mss, windowScale }), 0);
  const id = t.opened[0].id;
  t.stack.accept(id, 0);
  // With offload the SYN-ACK's checksum is left to the kernel: read it unverified.
  const iss = parseOut(t.sent.at(-1)!, !options.offload).seq;
  const una = (iss + 1) >>> 0;
  t.stack.input(appSegment({ flags: ACK, seq: 1001, ack: una, window }), 1);
  t.sent.length = 0;
  t.offloads.length = 0;
  return { ...t, id, iss, una };
}
