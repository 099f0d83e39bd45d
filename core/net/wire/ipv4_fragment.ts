/**
 * IPv4 fragmentation (RFC 791 §2.3, §3.2 "An Example Fragmentation Procedure"): how the packet
 * loop hands the kernel a UDP datagram longer than the TUN's MTU. The kernel reassembles the
 * fragments (they travel one local hop, none of RFC 8900's path problems apply) and delivers the
 * datagram the client allowed for (a DNS answer up to its EDNS size, RFC 6891 §6.2.5).
 */
import { finish, sum } from "./checksum.ts";
import { IPV4_HEADER_LENGTH } from "./ipv4.ts";

/** The longest UDP payload one IPv4 datagram carries (65535 − IPv4 and UDP headers). */
export const MAX_UDP_PAYLOAD = 65535 - IPV4_HEADER_LENGTH - 8;

/** The "more fragments" flag in the flags/offset word. */
const MORE_FRAGMENTS = 0x2000;

/**
 * Emits `packet` (a 20-byte header, no options, as `emitIpv4` writes) as is when it fits `mtu`,
 * else as fragments built one at a time in `out` (at least `mtu` bytes): the header copied with
 * DF cleared, MF on all but the last, the offset in 8-byte units, its own checksum. `emit` gets a
 * view of `out` valid during the call.
 */
export function fragmentIpv4(
  packet: Uint8Array,
  mtu: number,
  out: Uint8Array,
  emit: (fragment: Uint8Array) => void,
): void {
  if (packet.length <= mtu) return emit(packet);
  // Every fragment but the last carries a multiple of 8 bytes (RFC 791 §3.1, Fragment Offset).
  const step = Math.floor((mtu - IPV4_HEADER_LENGTH) / 8) * 8;
  if (step <= 0) throw new RangeError(`MTU ${mtu} is too small to fragment IPv4`);
  const payload = packet.length - IPV4_HEADER_LENGTH;
  for (let at = 0; at < payload; at += step) {
    const length = Math.min(step, payload - at);
    out.set(packet.subarray(0, IPV4_HEADER_LENGTH));
    out.set(
      packet.subarray(IPV4_HEADER_LENGTH + at, IPV4_HEADER_LENGTH + at + length),
      IPV4_HEADER_LENGTH,
    );
    const total = IPV4_HEADER_LENGTH + length;
    const flags = (at + length < payload ? MORE_FRAGMENTS : 0) | (at >> 3);
    out[2] = total >> 8;
    out[3] = total & 0xff;
    out[6] = flags >> 8;
    out[7] = flags & 0xff;
    out[10] = 0;
    out[11] = 0;
    const checksum = finish(sum(out, 0, IPV4_HEADER_LENGTH));
    out[10] = checksum >> 8;
    out[11] = checksum & 0xff;
    emit(out.subarray(0, total));
  }
}
