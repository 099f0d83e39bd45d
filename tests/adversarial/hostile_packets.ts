/**
 * Hand-built IPv4 packets for adversarial tests: every header field and the raw TCP option bytes
 * are the caller's, so a test can send what no kernel would (an MSS of 0, a data offset past the
 * packet, a wrong length). Checksums are filled correctly unless the caller asks otherwise, so the
 * packet reaches the code under attack instead of being dropped by a checksum check.
 */
import { finish, pseudoHeaderSum, sum } from "../../core/net/wire/checksum.ts";
import { parseIpv4Address } from "../../core/net/wire/ipv4.ts";

/** IPv4 header fields (RFC 791 §3.1); defaults make a well-formed, unfragmented packet. */
export interface Ipv4Fields {
  src: string;
  dst: string;
  protocol: number;
  ttl?: number;
  id?: number;
  /** Flags and fragment offset as one 16-bit field (default 0x4000: don't fragment). */
  flagsAndFragment?: number;
  /** Overrides the header length in 32-bit words (default 5). */
  ihl?: number;
  /** Overrides the total length field (default: the real length). */
  totalLength?: number;
}

/** TCP header fields (RFC 9293 §3.1) with the options as raw bytes. */
export interface TcpFields {
  srcPort: number;
  dstPort: number;
  seq?: number;
  ack?: number;
  flags: number;
  window?: number;
  urgent?: number;
  /** Raw option bytes, padded with zeros to a multiple of 4. */
  options?: Uint8Array;
  /** Overrides the data offset in 32-bit words (default: header plus options). */
  dataOffset?: number;
  payload?: Uint8Array;
}

/** TCP flag bits (RFC 9293 §3.1). */
export const TcpFlag = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10, URG: 0x20 };

/** Option bytes: MSS (kind 2), window scale (kind 3), SACK permitted (kind 4), raw others. */
export const TcpOption = {
  mss: (value: number) => [2, 4, (value >> 8) & 0xff, value & 0xff],
  windowScale: (shift: number) => [3, 3, shift & 0xff],
  sackPermitted: () => [4, 2],
  nop: () => [1],
};

/** An IPv4 packet around `payload` (`payloadFor` fills transport checksums). */
export function ipv4Packet(fields: Ipv4Fields, payload: Uint8Array): Uint8Array {
  const headerLength = 20;
  const packet = new Uint8Array(headerLength + payload.length);
  const view = new DataView(packet.buffer);
  view.setUint8(0, 0x40 | (fields.ihl ?? 5));
  view.setUint16(2, fields.totalLength ?? packet.length);
  view.setUint16(4, fields.id ?? 0);
  view.setUint16(6, fields.flagsAndFragment ?? 0x4000);
  view.setUint8(8, fields.ttl ?? 64);
  view.setUint8(9, fields.protocol);
  view.setUint32(12, parseIpv4Address(fields.src) >>> 0);
  view.setUint32(16, parseIpv4Address(fields.dst) >>> 0);
  view.setUint16(10, finish(sum(packet, 0, headerLength)));
  packet.set(payload, headerLength);
  return packet;
}

/** A TCP segment in an IPv4 packet, checksums filled. */
export function tcpPacket(ip: { src: string; dst: string } & Partial<Ipv4Fields>, tcp: TcpFields) {
  const options = tcp.options ?? new Uint8Array(0);
  const optionsLength = Math.ceil(options.length / 4) * 4;
  const payload = tcp.payload ?? new Uint8Array(0);
  const segment = new Uint8Array(20 + optionsLength + payload.length);
  const view = new DataView(segment.buffer);
  view.setUint16(0, tcp.srcPort);
  view.setUint16(2, tcp.dstPort);
  view.setUint32(4, (tcp.seq ?? 1000) >>> 0);
  view.setUint32(8, (tcp.ack ?? 0) >>> 0);
  view.setUint8(12, ((tcp.dataOffset ?? (20 + optionsLength) / 4) & 0xf) << 4);
  view.setUint8(13, tcp.flags);
  view.setUint16(14, tcp.window ?? 64240);
  view.setUint16(18, tcp.urgent ?? 0);
  segment.set(options, 20);
  segment.set(payload, 20 + optionsLength);
  const pseudo = pseudoHeaderSum(
    parseIpv4Address(ip.src) >>> 0,
    parseIpv4Address(ip.dst) >>> 0,
    6,
    segment.length,
  );
  view.setUint16(16, finish(sum(segment, 0, segment.length, pseudo)));
  return ipv4Packet({ protocol: 6, ...ip }, segment);
}

/** A UDP datagram in an IPv4 packet, checksums filled. */
export function udpPacket(
  ip: { src: string; dst: string } & Partial<Ipv4Fields>,
  udp: { srcPort: number; dstPort: number; payload: Uint8Array },
): Uint8Array {
  const datagram = new Uint8Array(8 + udp.payload.length);
  const view = new DataView(datagram.buffer);
  view.setUint16(0, udp.srcPort);
  view.setUint16(2, udp.dstPort);
  view.setUint16(4, datagram.length);
  datagram.set(udp.payload, 8);
  const pseudo = pseudoHeaderSum(
    parseIpv4Address(ip.src) >>> 0,
    parseIpv4Address(ip.dst) >>> 0,
    17,
    datagram.length,
  );
  view.setUint16(6, finish(sum(datagram, 0, datagram.length, pseudo)) || 0xffff);
  return ipv4Packet({ protocol: 17, ...ip }, datagram);
}

/** The fields of a TCP segment read back from an IPv4 packet (for replies a raw socket saw). */
export interface SeenTcp {
  src: string;
  dst: string;
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  flags: number;
  window: number;
  payloadLength: number;
}

/** Parses a received IPv4/TCP packet loosely (tests only; no checksum check). */
export function readTcp(packet: Uint8Array): SeenTcp | undefined {
  if (packet.length < 40 || packet[0] >> 4 !== 4 || packet[9] !== 6) return undefined;
  const view = new DataView(packet.buffer, packet.byteOffset, packet.byteLength);
  const ihl = (packet[0] & 0xf) * 4;
  const total = Math.min(view.getUint16(2), packet.length);
  const dataOffset = (packet[ihl + 12] >> 4) * 4;
  const address = (at: number) => Array.from(packet.subarray(at, at + 4)).join(".");
  return {
    src: address(12),
    dst: address(16),
    srcPort: view.getUint16(ihl),
    dstPort: view.getUint16(ihl + 2),
    seq: view.getUint32(ihl + 4),
    ack: view.getUint32(ihl + 8),
    flags: packet[ihl + 13],
    window: view.getUint16(ihl + 14),
    payloadLength: total - ihl - dataOffset,
  };
}
