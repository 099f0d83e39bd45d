/**
 * The packet loop's end of a macOS utun (core/net/device/tun_device.ts PacketIo), opened inside
 * the loop's Worker: every packet carries the 4-byte address family (utun_wire.ts), reads and
 * writes are non-blocking on the kernel-control socket, and the loop sleeps in `poll` on it and
 * the read end of its wake-up pipe. No offload: packets are at most the MTU, checksums are
 * computed and verified by the stack.
 */
import { copyBytes } from "../linux/libc.ts";
import type { PacketIo, PacketIoSpec } from "../../core/net/device/tun_device.ts";
import type { Offload } from "../../core/net/wire/virtio.ts";
import { Darwin } from "./libsystem.ts";
import { unframeUtunPacket, UTUN_HEADER_LENGTH, writeUtunHeader } from "./utun_wire.ts";
import { pollReadable } from "../poll_pair.ts";

/** Opens the loop's end of a utun. */
export function openPacketIo(spec: PacketIoSpec, wakeFd: number): PacketIo {
  return new DarwinPacketIo(new Darwin(), spec.fd, wakeFd, spec.mtu);
}

/** The utun framing over any read and write calls (tests drive it with a socketpair). */
export class DarwinPacketIo implements PacketIo {
  readonly copy;
  readonly #os: Darwin;
  readonly #fd: number;
  readonly #buffer: Uint8Array;
  readonly #poll;

  constructor(os: Darwin, fd: number, wakeFd: number, mtu: number) {
    this.#os = os;
    this.#fd = fd;
    this.copy = copyBytes(os.sym);
    this.#buffer = new Uint8Array(UTUN_HEADER_LENGTH + Math.max(mtu, 1500) + 64);
    this.#poll = pollReadable(
      fd,
      wakeFd,
      (fds, count, timeoutMs) => os.sym.poll(fds, count, timeoutMs),
      () => os.errno(),
      (into) => Number(os.sym.read(wakeFd, into, BigInt(into.length))),
    );
  }

  receive(max: number, take: (packet: Uint8Array, checksumTrusted: boolean) => void): number {
    return receiveUtun(
      (into) => Number(this.#os.sym.read(this.#fd, into, BigInt(into.length))),
      this.#buffer,
      max,
      take,
    );
  }

  transmit(packet: Uint8Array, _offload: Offload): void {
    const frame = utunFrame(packet);
    this.#os.sym.write(this.#fd, frame, BigInt(frame.length));
  }

  wait(timeoutMs: number): boolean {
    return this.#poll(timeoutMs);
  }

  close(): void {
    this.#os.close();
  }
}

/**
 * Reads utun frames with `read` (bytes, or ≤ 0 when none are waiting) until none are left or
 * `max` were read: IPv4 packets go to `take`, other families are skipped. Returns the bytes read.
 */
export function receiveUtun(
  read: (into: Uint8Array) => number,
  buffer: Uint8Array,
  max: number,
  take: (packet: Uint8Array, checksumTrusted: boolean) => void,
): number {
  let bytes = 0;
  for (let i = 0; i < max; i++) {
    const n = read(buffer);
    if (n <= 0) break;
    bytes += n;
    const packet = unframeUtunPacket(buffer.subarray(0, n));
    if (packet !== null) take(packet, false); // no offload: the stack verifies every checksum
  }
  return bytes;
}

/**
 * The frame of `packet` for a utun write: its family goes into the headroom before it (the stack
 * leaves FRAME_HEADROOM ≥ 4 bytes there), so nothing is copied.
 */
export function utunFrame(packet: Uint8Array): Uint8Array {
  const frame = new Uint8Array(
    packet.buffer,
    packet.byteOffset - UTUN_HEADER_LENGTH,
    packet.length + UTUN_HEADER_LENGTH,
  );
  writeUtunHeader(frame, packet[0] >> 4);
  return frame;
}
