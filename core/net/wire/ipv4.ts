/** IPv4 header view: parse with validation (RFC 791), and emit a 20-byte header in place. */
import { finish, sum } from "./checksum.ts";

/** Protocol numbers k8stun handles. */
export const PROTO_ICMP = 1;
export const PROTO_TCP = 6;
export const PROTO_UDP = 17;

/** Length of the header k8stun emits (no options). */
export const IPV4_HEADER_LENGTH = 20;

/** A parsed IPv4 header. */
export interface Ipv4Repr {
  src: number;
  dst: number;
  protocol: number;
  headerLength: number;
  /** Total length from the header (≤ the buffer). */
  totalLength: number;
  /** A fragment (MF set or offset ≠ 0): never parsed as TCP/UDP (docs/tcp.md §2.6). */
  fragment: boolean;
}

/** Parses and validates (docs/tcp.md §2.1, docs/tcp.md §2.5); `null` for anything malformed. */
export function parseIpv4(packet: Uint8Array, length: number): Ipv4Repr | null {
  if (length < IPV4_HEADER_LENGTH || packet[0] >> 4 !== 4) return null;
  const headerLength = (packet[0] & 0x0f) * 4;
  const totalLength = (packet[2] << 8) | packet[3];
  if (headerLength < 20 || totalLength < headerLength || totalLength > length) return null;
  if (finish(sum(packet, 0, headerLength)) !== 0) return null;
  const flagsFragment = (packet[6] << 8) | packet[7];
  return {
    src: ((packet[12] << 24) | (packet[13] << 16) | (packet[14] << 8) | packet[15]) >>> 0,
    dst: ((packet[16] << 24) | (packet[17] << 16) | (packet[18] << 8) | packet[19]) >>> 0,
    protocol: packet[9],
    headerLength,
    totalLength,
    fragment: (flagsFragment & 0x3fff) !== 0,
  };
}

/** Writes a 20-byte header (DF set, TTL 64) at the start of `packet`, with its checksum. */
export function emitIpv4(
  packet: Uint8Array,
  src: number,
  dst: number,
  protocol: number,
  payloadLength: number,
  id: number,
): void {
  const total = IPV4_HEADER_LENGTH + payloadLength;
  packet[0] = 0x45;
  packet[1] = 0;
  packet[2] = total >> 8;
  packet[3] = total & 0xff;
  packet[4] = (id >> 8) & 0xff;
  packet[5] = id & 0xff;
  packet[6] = 0x40; // DF
  packet[7] = 0;
  packet[8] = 64;
  packet[9] = protocol;
  packet[10] = 0;
  packet[11] = 0;
  writeU32(packet, 12, src);
  writeU32(packet, 16, dst);
  const checksum = finish(sum(packet, 0, IPV4_HEADER_LENGTH));
  packet[10] = checksum >> 8;
  packet[11] = checksum & 0xff;
}

/** Big-endian u32 store. */
export function writeU32(buf: Uint8Array, offset: number, value: number): void {
  buf[offset] = value >>> 24;
  buf[offset + 1] = (value >>> 16) & 0xff;
  buf[offset + 2] = (value >>> 8) & 0xff;
  buf[offset + 3] = value & 0xff;
}

/** Big-endian u32 load. */
export function readU32(buf: Uint8Array, offset: number): number {
  return ((buf[offset] << 24) | (buf[offset + 1] << 16) | (buf[offset + 2] << 8) |
    buf[offset + 3]) >>> 0;
}

/** Dotted form of an address. */
export function formatIpv4(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/** Number form of a dotted address (0 for garbage). */
export function parseIpv4Address(text: string): number {
  const p = text.split(".").map(Number);
  return p.length === 4 && p.every((x) => Number.isInteger(x) && x >= 0 && x < 256)
    ? ((p[0] << 24) | (p[1] << 16) | (p[2] << 8) | p[3]) >>> 0
    : 0;
}
