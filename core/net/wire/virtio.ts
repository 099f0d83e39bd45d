/**
 * The `virtio_net_hdr` that prefixes every packet on a TUN opened with IFF_VNET_HDR
 * (docs/platform.md §2.3; 10 bytes, little-endian). With TUNSETOFFLOAD(CSUM|TSO4) the kernel
 * hands us TCP super-packets (one read instead of ~45 at MTU 1500) with partial checksums, and
 * takes ours the same way: it finishes the checksum and cuts a super-packet into MSS segments.
 */

/** Bytes before each packet. */
export const VNET_HEADER_LENGTH = 10;

const F_NEEDS_CSUM = 0x01;
const F_DATA_VALID = 0x02;
const GSO_NONE = 0;
const GSO_TCPV4 = 1;
/** TCP's checksum field, from the start of the TCP header. */
const TCP_CSUM_OFFSET = 16;

/** How the kernel should treat a packet we write. */
export type Offload =
  /** Checksums complete (UDP, ICMP, RST…). */
  | { kind: "none" }
  /** TCP checksum field holds the pseudo-header sum; the kernel finishes it. */
  | { kind: "csum"; ipHeaderLength: number }
  /** As `csum`, and the kernel cuts the payload into `mss`-byte segments. */
  | { kind: "tso"; ipHeaderLength: number; headerLength: number; mss: number };

/** Whether the kernel vouches for a read packet's checksums (partial or already verified). */
export function checksumTrusted(header: Uint8Array): boolean {
  return (header[0] & (F_NEEDS_CSUM | F_DATA_VALID)) !== 0;
}

/** Writes the header for `offload` into `header[0, 10)`. */
export function writeVnetHeader(header: Uint8Array, offload: Offload): void {
  header.fill(0, 0, VNET_HEADER_LENGTH);
  if (offload.kind === "none") return;
  const view = new DataView(header.buffer, header.byteOffset, VNET_HEADER_LENGTH);
  header[0] = F_NEEDS_CSUM;
  header[1] = offload.kind === "tso" ? GSO_TCPV4 : GSO_NONE;
  if (offload.kind === "tso") {
    view.setUint16(2, offload.headerLength, true);
    view.setUint16(4, offload.mss, true);
  }
  view.setUint16(6, offload.ipHeaderLength, true);
  view.setUint16(8, TCP_CSUM_OFFSET, true);
}
