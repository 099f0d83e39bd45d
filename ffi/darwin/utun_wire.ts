/**
 * macOS utun structures as bytes (docs/platform.md §4): the kernel-control lookup
 * (`ctl_info`), the control address (`sockaddr_ctl`), BSD `sockaddr_in` (with its length byte),
 * `in_aliasreq` for the address, `ifreq` for the MTU, and the 4-byte address-family prefix of
 * every utun packet. Written to the spec and tested byte for byte; this Linux machine cannot run
 * them against a real utun.
 */
import { CTL_INFO_SIZE, IFREQ_SIZE, IN_ALIASREQ_SIZE } from "./ioctl.ts";

export const PF_SYSTEM = 32;
export const SYSPROTO_CONTROL = 2;
export const AF_SYS_CONTROL = 2;
export const UTUN_OPT_IFNAME = 2;
export const UTUN_CONTROL_NAME = "com.apple.net.utun_control";
const AF_INET = 2;
const AF_INET6 = 30;
const IFNAMSIZ = 16;

/** `ctl_info` asking for the utun control's id (CTLIOCGINFO fills `ctl_id` at offset 0). */
export function encodeCtlInfo(): Uint8Array {
  const out = new Uint8Array(CTL_INFO_SIZE);
  out.set(new TextEncoder().encode(UTUN_CONTROL_NAME), 4);
  return out;
}

/** The `ctl_id` the kernel wrote back (host order: little-endian on every Mac). */
export function decodeCtlId(info: Uint8Array): number {
  return new DataView(info.buffer, info.byteOffset, 4).getUint32(0, true);
}

/** `sockaddr_ctl` for connect(): unit N+1 makes `utunN`, 0 takes the first free one. */
export function encodeSockaddrCtl(ctlId: number, unit: number): Uint8Array {
  const out = new Uint8Array(32);
  const view = new DataView(out.buffer);
  out[0] = 32; // sc_len
  out[1] = PF_SYSTEM; // sc_family (AF_SYSTEM)
  view.setUint16(2, AF_SYS_CONTROL, true);
  view.setUint32(4, ctlId, true);
  view.setUint32(8, unit, true);
  return out;
}

/** BSD `sockaddr_in`: length 16, family, port (network order), address (network order). */
export function encodeSockaddrIn(address: number, port = 0): Uint8Array {
  const out = new Uint8Array(16);
  const view = new DataView(out.buffer);
  out[0] = 16;
  out[1] = AF_INET;
  view.setUint16(2, port, false);
  view.setUint32(4, address, false);
  return out;
}

function nameField(out: Uint8Array, name: string): void {
  const bytes = new TextEncoder().encode(name);
  if (bytes.length >= IFNAMSIZ) throw new Error(`interface name "${name}" is too long`);
  out.set(bytes);
}

/** `in_aliasreq` for SIOCAIFADDR: the point-to-point peer is the address itself (docs/platform.md §4). */
export function encodeInAliasReq(name: string, address: number, mask: number): Uint8Array {
  const out = new Uint8Array(IN_ALIASREQ_SIZE);
  nameField(out, name);
  out.set(encodeSockaddrIn(address), 16); // ifra_addr
  out.set(encodeSockaddrIn(address), 32); // ifra_broadaddr (destination)
  out.set(encodeSockaddrIn(mask), 48); // ifra_mask
  return out;
}

/** `ifreq` carrying an MTU for SIOCSIFMTU. */
export function encodeIfreqMtu(name: string, mtu: number): Uint8Array {
  const out = new Uint8Array(IFREQ_SIZE);
  nameField(out, name);
  new DataView(out.buffer).setInt32(16, mtu, true);
  return out;
}

/** Bytes before every packet on a utun: its address family, a u32 in network order. */
export const UTUN_HEADER_LENGTH = 4;

/** Writes the address family of the IP packet that follows into `header[0, 4)`. */
export function writeUtunHeader(header: Uint8Array, ipVersion: number): void {
  new DataView(header.buffer, header.byteOffset, UTUN_HEADER_LENGTH)
    .setUint32(0, ipVersion === 6 ? AF_INET6 : AF_INET, false);
}

/** A packet as written to a utun: the address family (network order), then the IP packet. */
export function frameUtunPacket(packet: Uint8Array): Uint8Array {
  const out = new Uint8Array(UTUN_HEADER_LENGTH + packet.length);
  writeUtunHeader(out, packet[0] >> 4);
  out.set(packet, UTUN_HEADER_LENGTH);
  return out;
}

/** The IPv4 packet of a utun read, or null for IPv6 and other families (ignored). */
export function unframeUtunPacket(frame: Uint8Array): Uint8Array | null {
  if (frame.length <= UTUN_HEADER_LENGTH) return null;
  const family = new DataView(frame.buffer, frame.byteOffset, 4).getUint32(0, false);
  return family === AF_INET ? frame.subarray(UTUN_HEADER_LENGTH) : null;
}
