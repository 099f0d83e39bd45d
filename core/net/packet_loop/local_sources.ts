/**
 * Which packets entering the TUN the loop serves: those whose IPv4 source is an address of this
 * host. A neighbour that routes the VIP range through this machine (any host with `ip_forward=1`,
 * which Docker, kind and libvirt turn on) would otherwise reach the cluster with the user's
 * credentials; its packets arrive with its own source address, which no interface here has.
 */
import { readU32 } from "../wire/ipv4.ts";

/** The most addresses the loop keeps; the main thread sends no more (see data_plane.ts). */
export const MAX_LOCAL_ADDRESSES = 4096;

/** The host's addresses, as the main thread last listed them. */
export class LocalSources {
  #addresses: Set<number>;

  constructor(addresses: readonly number[]) {
    this.#addresses = new Set(addresses);
  }

  /** Replaces the set (the host's addresses changed). */
  replace(addresses: readonly number[]): void {
    this.#addresses = new Set(addresses);
  }

  /**
   * Whether `packet` comes from this host. What is not an IPv4 header at all is left to the
   * stack, which drops it (docs/tcp.md §2.5).
   */
  admits(packet: Uint8Array): boolean {
    if (packet.length < 20 || packet[0] >> 4 !== 4) return true;
    return this.#addresses.has(readU32(packet, 12));
  }

  /** The IPv4 source of a packet `admits` refused (for the log). */
  static sourceOf(packet: Uint8Array): number {
    return readU32(packet, 12);
  }
}
