/**
 * TCP header view (RFC 9293 §3.1): parse with checksum verification and option decoding (MSS,
 * window scale; others ignored), and emit a segment into a reusable buffer.
 *
 * Every field read here comes from whoever can write to the TUN, so each is bounded before use:
 * the data offset lies within the segment, an option never reaches past the header, a window
 * scale above 14 reads as 14. The urgent pointer is ignored: urgent bytes are ordinary data
 * delivered inline (RFC 6093 §6). The MSS is reported as sent; the connection clamps it (mss.ts).
 */
import { finish, pseudoHeaderSum, sum } from "./checksum.ts";
import { emitIpv4, IPV4_HEADER_LENGTH, PROTO_TCP, readU32, writeU32 } from "./ipv4.ts";

export const FIN = 0x01;
export const SYN = 0x02;
export const RST = 0x04;
export const PSH = 0x08;
export const ACK = 0x10;

/** A parsed TCP segment; the payload is `packet[payloadOffset, payloadOffset + payloadLength)`. */
export interface TcpRepr {
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  flags: number;
  window: number;
  /** MSS option as sent (0–65535: clamp before use, mss.ts), SYN only. */
  mss?: number;
  /** Window-scale shift option (0–14), SYN only. */
  windowScale?: number;
  payloadOffset: number;
  payloadLength: number;
}

/**
 * Parses the TCP segment of an IPv4 packet; `null` if malformed or (with `verify`) the checksum
 * is wrong. The kernel's offloaded packets carry partial checksums it vouches for: not verified.
 */
export function parseTcp(
  packet: Uint8Array,
  ipHeaderLength: number,
  ipTotalLength: number,
  src: number,
  dst: number,
  verify = true,
): TcpRepr | null {
  const o = ipHeaderLength;
  const segmentLength = ipTotalLength - o;
  if (o < 20 || ipTotalLength > packet.length || segmentLength < 20) return null;
  const dataOffset = (packet[o + 12] >> 4) * 4;
  if (dataOffset < 20 || dataOffset > segmentLength) return null;
  if (verify) {
    const acc = sum(packet, o, ipTotalLength, pseudoHeaderSum(src, dst, PROTO_TCP, segmentLength));
    if (finish(acc) !== 0) return null;
  }
  const flags = packet[o + 13] & 0x3f;
  const repr: TcpRepr = {
    srcPort: (packet[o] << 8) | packet[o + 1],
    dstPort: (packet[o + 2] << 8) | packet[o + 3],
    seq: readU32(packet, o + 4),
    ack: readU32(packet, o + 8),
    flags,
    window: (packet[o + 14] << 8) | packet[o + 15],
    payloadOffset: o + dataOffset,
    payloadLength: segmentLength - dataOffset,
  };
  if (flags & SYN) parseSynOptions(packet, o + 20, o + dataOffset, repr);
  return repr;
}

/**
 * Reads the MSS and window-scale options of a SYN from `packet[start, end)` into `repr`. A
 * malformed option (length 0 or 1, or one running past the header) ends the parse with what was
 * read so far, as Linux does (tcp_parse_options); options of a wrong length (an MSS option that
 * is not 4 bytes, SACK blocks of any size) are skipped. Each step advances by at least one byte.
 */
function parseSynOptions(packet: Uint8Array, start: number, end: number, repr: TcpRepr): void {
  for (let i = start; i < end;) {
    const kind = packet[i];
    if (kind === 0) return; // end of option list
    if (kind === 1) { // no-operation
      i++;
      continue;
    }
    if (i + 1 >= end) return;
    const length = packet[i + 1];
    if (length < 2 || i + length > end) return;
    if (kind === 2 && length === 4) repr.mss = (packet[i + 2] << 8) | packet[i + 3];
    // RFC 7323 §2.3: a shift above 14 MUST be used as 14.
    if (kind === 3 && length === 3) repr.windowScale = Math.min(packet[i + 2], 14);
    i += length;
  }
}

/** Fields of a segment to emit. */
export interface TcpOut {
  src: number;
  dst: number;
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  flags: number;
  window: number;
  /** SYN-ACK options. */
  mss?: number;
  windowScale?: number;
}

/**
 * Writes an IPv4+TCP packet into `out` and returns its length. A payload of `payloadLength` bytes
 * must already be in place right after the TCP header (at 40 for segments without options), so
 * data goes from the send buffer into the packet with one copy. With `partialChecksum` the
 * checksum field gets the folded pseudo-header sum only, for a device that finishes it (offload,
 * virtio.ts): the payload is never summed here.
 */
export function emitTcp(
  out: Uint8Array,
  seg: TcpOut,
  payloadLength = 0,
  ipId = 0,
  partialChecksum = false,
): number {
  const optionsLength = (seg.mss !== undefined ? 4 : 0) + (seg.windowScale !== undefined ? 4 : 0);
  const headerLength = 20 + optionsLength;
  const o = IPV4_HEADER_LENGTH;
  out[o] = seg.srcPort >> 8;
  out[o + 1] = seg.srcPort & 0xff;
  out[o + 2] = seg.dstPort >> 8;
  out[o + 3] = seg.dstPort & 0xff;
  writeU32(out, o + 4, seg.seq >>> 0);
  writeU32(out, o + 8, seg.ack >>> 0);
  out[o + 12] = (headerLength / 4) << 4;
  out[o + 13] = seg.flags;
  out[o + 14] = seg.window >> 8;
  out[o + 15] = seg.window & 0xff;
  out[o + 16] = 0;
  out[o + 17] = 0;
  out[o + 18] = 0;
  out[o + 19] = 0;
  let p = o + 20;
  if (seg.mss !== undefined) {
    out[p] = 2;
    out[p + 1] = 4;
    out[p + 2] = seg.mss >> 8;
    out[p + 3] = seg.mss & 0xff;
    p += 4;
  }
  if (seg.windowScale !== undefined) {
    out[p] = 1; // NOP keeps the option list 4-byte aligned
    out[p + 1] = 3;
    out[p + 2] = 3;
    out[p + 3] = seg.windowScale;
  }
  const segmentLength = headerLength + payloadLength;
  const pseudo = pseudoHeaderSum(seg.src, seg.dst, PROTO_TCP, segmentLength);
  const checksum = partialChecksum
    ? (~finish(pseudo)) & 0xffff // the uncomplemented fold
    : finish(sum(out, o, o + segmentLength, pseudo));
  out[o + 16] = checksum >> 8;
  out[o + 17] = checksum & 0xff;
  emitIpv4(out, seg.src, seg.dst, PROTO_TCP, segmentLength, ipId);
  return IPV4_HEADER_LENGTH + segmentLength;
}
