/**
 * ICMP messages the stack sends (RFC 792): echo replies, and "port unreachable" for UDP to a port
 * nothing serves, so the app's socket fails at once (ECONNREFUSED) instead of waiting for a reply.
 */
import { finish, sum } from "./checksum.ts";
import { emitIpv4, IPV4_HEADER_LENGTH, PROTO_ICMP } from "./ipv4.ts";

const ECHO_REPLY = 0;
const ECHO_REQUEST = 8;
const DESTINATION_UNREACHABLE = 3;
const PORT_UNREACHABLE = 3;
/** ICMP header: type, code, checksum, 4 bytes unused by destination unreachable. */
const ICMP_HEADER_LENGTH = 8;
/** An ICMP error carries as much of the datagram as keeps it within 576 bytes (RFC 1812 §4.3.2.3). */
const MAX_ERROR_PACKET = 576;

/**
 * Turns an ICMP echo request (type 8) in `packet` into the reply in `out` (docs/tcp.md §7.1):
 * addresses swapped, id, sequence and data kept, type 0, new checksum. Returns its length, or 0
 * when `packet` is no valid echo request or its reply does not fit in `out`.
 */
export function emitEchoReply(
  out: Uint8Array,
  packet: Uint8Array,
  o: number,
  end: number,
  src: number,
  dst: number,
): number {
  if (end - o < 8 || packet[o] !== ECHO_REQUEST || packet[o + 1] !== 0) return 0;
  if (end > packet.length || IPV4_HEADER_LENGTH + end - o > out.length) return 0;
  if (finish(sum(packet, o, end)) !== 0) return 0;
  const length = end - o;
  out.set(packet.subarray(o, end), IPV4_HEADER_LENGTH);
  out[IPV4_HEADER_LENGTH] = ECHO_REPLY;
  out[IPV4_HEADER_LENGTH + 2] = 0;
  out[IPV4_HEADER_LENGTH + 3] = 0;
  const checksum = finish(sum(out, IPV4_HEADER_LENGTH, IPV4_HEADER_LENGTH + length));
  out[IPV4_HEADER_LENGTH + 2] = checksum >> 8;
  out[IPV4_HEADER_LENGTH + 3] = checksum & 0xff;
  emitIpv4(out, dst, src, PROTO_ICMP, length, 0);
  return IPV4_HEADER_LENGTH + length;
}

/**
 * Writes into `out` the ICMP port unreachable (type 3, code 3) for the UDP datagram `packet`
 * (an IPv4 packet of `totalLength` bytes from `src` to `dst`): from `dst` back to `src`, quoting
 * the datagram's IP header and as much of the rest as fits in 576 bytes — at least the 8 bytes of
 * UDP header the sender's kernel matches to its socket (RFC 792; RFC 1122 §3.2.2). Returns its
 * length, or 0 when `out` is too small.
 */
export function emitPortUnreachable(
  out: Uint8Array,
  packet: Uint8Array,
  totalLength: number,
  src: number,
  dst: number,
): number {
  const quoted = Math.min(totalLength, MAX_ERROR_PACKET - IPV4_HEADER_LENGTH - ICMP_HEADER_LENGTH);
  const length = ICMP_HEADER_LENGTH + quoted;
  if (IPV4_HEADER_LENGTH + length > out.length) return 0;
  const o = IPV4_HEADER_LENGTH;
  out[o] = DESTINATION_UNREACHABLE;
  out[o + 1] = PORT_UNREACHABLE;
  out.fill(0, o + 2, o + ICMP_HEADER_LENGTH); // checksum (for now) and the unused word
  out.set(packet.subarray(0, quoted), o + ICMP_HEADER_LENGTH);
  const checksum = finish(sum(out, o, o + length));
  out[o + 2] = checksum >> 8;
  out[o + 3] = checksum & 0xff;
  emitIpv4(out, dst, src, PROTO_ICMP, length, 0);
  return IPV4_HEADER_LENGTH + length;
}
