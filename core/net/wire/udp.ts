/** UDP (RFC 768) views. */
import { finish, pseudoHeaderSum, sum } from "./checksum.ts";
import { emitIpv4, IPV4_HEADER_LENGTH, PROTO_UDP } from "./ipv4.ts";

/** A parsed UDP datagram; the payload is `packet[payloadOffset, payloadOffset + payloadLength)`. */
export interface UdpRepr {
  srcPort: number;
  dstPort: number;
  payloadOffset: number;
  payloadLength: number;
}

/** Parses UDP; a zero checksum is allowed on IPv4 (RFC 768). */
export function parseUdp(
  packet: Uint8Array,
  o: number,
  end: number,
  src: number,
  dst: number,
  verify = true,
): UdpRepr | null {
  if (end - o < 8) return null;
  const length = (packet[o + 4] << 8) | packet[o + 5];
  if (length < 8 || o + length > end) return null;
  const checksum = (packet[o + 6] << 8) | packet[o + 7];
  if (
    verify && checksum !== 0 &&
    finish(sum(packet, o, o + length, pseudoHeaderSum(src, dst, PROTO_UDP, length))) !== 0
  ) {
    return null;
  }
  return {
    srcPort: (packet[o] << 8) | packet[o + 1],
    dstPort: (packet[o + 2] << 8) | packet[o + 3],
    payloadOffset: o + 8,
    payloadLength: length - 8,
  };
}

/** Writes an IPv4+UDP packet into `out`; returns its length, or 0 if it does not fit. */
export function emitUdp(
  out: Uint8Array,
  src: number,
  dst: number,
  srcPort: number,
  dstPort: number,
  payload: Uint8Array,
  ipId = 0,
): number {
  const o = IPV4_HEADER_LENGTH;
  const length = 8 + payload.length;
  if (length > 0xffff - o || o + length > out.length) return 0;
  out[o] = srcPort >> 8;
  out[o + 1] = srcPort & 0xff;
  out[o + 2] = dstPort >> 8;
  out[o + 3] = dstPort & 0xff;
  out[o + 4] = length >> 8;
  out[o + 5] = length & 0xff;
  out[o + 6] = 0;
  out[o + 7] = 0;
  out.set(payload, o + 8);
  let checksum = finish(sum(out, o, o + length, pseudoHeaderSum(src, dst, PROTO_UDP, length)));
  if (checksum === 0) checksum = 0xffff; // 0 means "no checksum" (RFC 768)
  out[o + 6] = checksum >> 8;
  out[o + 7] = checksum & 0xff;
  emitIpv4(out, src, dst, PROTO_UDP, length, ipId);
  return IPV4_HEADER_LENGTH + length;
}
