/**
 * The packet loop's end of a Linux TUN (core/net/device/tun_device.ts PacketIo), opened inside
 * the loop's Worker: non-blocking `read`/`write` on the TUN descriptor and `poll` on it and the
 * loop's eventfd. Two framings, as the device was opened (tun.ts): with offload every packet
 * carries a 10-byte virtio header and may be a TCP super-packet of up to 64 KiB (virtio.ts); without,
 * packets are bare IPv4 of at most the MTU, their checksums computed by the stack.
 */
import { copyBytes, errno, type Libc, openLibc } from "./libc.ts";
import type { PacketIo, PacketIoSpec } from "../../core/net/device/tun_device.ts";
import {
  checksumTrusted,
  type Offload,
  VNET_HEADER_LENGTH,
  writeVnetHeader,
} from "../../core/net/wire/virtio.ts";
import { pollReadable } from "../poll_pair.ts";
import { LinuxLoopSockets } from "./loop_sockets.ts";
import { SocketRegistry } from "../../core/net/device/socket_registry.ts";

/** Opens the loop's end of a Linux TUN (or of a socketpair standing in for one in tests). */
export function openPacketIo(
  spec: PacketIoSpec,
  wakeFd: number,
  registry: SharedArrayBuffer,
): PacketIo {
  const lib = openLibc();
  const libc = lib.symbols;
  const virtio = spec.offload.checksum;
  const sockets = new LinuxLoopSockets(libc, new SocketRegistry(registry));
  return new LinuxPacketIo(libc, spec.fd, wakeFd, virtio, spec.mtu, sockets, () => {
    sockets.closeAll();
    lib.close();
  });
}

class LinuxPacketIo implements PacketIo {
  readonly copy;
  readonly #libc: Libc;
  readonly #fd: number;
  readonly #headerLength: number;
  /** One read: with offload a virtio header and a super-packet, else a packet of the MTU. */
  readonly #buffer: Uint8Array;
  readonly #poll;
  readonly #release: () => void;
  readonly sockets: LinuxLoopSockets;

  constructor(
    libc: Libc,
    fd: number,
    wakeFd: number,
    virtio: boolean,
    mtu: number,
    sockets: LinuxLoopSockets,
    release: () => void,
  ) {
    this.sockets = sockets;
    this.#libc = libc;
    this.#fd = fd;
    this.copy = copyBytes(libc);
    this.#headerLength = virtio ? VNET_HEADER_LENGTH : 0;
    this.#buffer = new Uint8Array(this.#headerLength + (virtio ? 65535 : mtu + 64));
    this.#poll = pollReadable(
      fd,
      wakeFd,
      (fds, count, timeoutMs) => libc.poll(fds, BigInt(count), timeoutMs),
      () => errno(libc),
      (into) => Number(libc.read(wakeFd, into, BigInt(into.length))),
      sockets.fd,
    );
    this.#release = release;
  }

  receive(max: number, take: (packet: Uint8Array, checksumTrusted: boolean) => void): number {
    const buffer = this.#buffer;
    const headerLength = this.#headerLength;
    let bytes = 0;
    for (let i = 0; i < max; i++) {
      const n = Number(this.#libc.read(this.#fd, buffer, BigInt(buffer.length)));
      if (n <= headerLength) break; // EAGAIN (or a frame without a packet)
      bytes += n;
      take(buffer.subarray(headerLength, n), headerLength > 0 && checksumTrusted(buffer));
    }
    return bytes;
  }

  transmit(packet: Uint8Array, offload: Offload): void {
    if (this.#headerLength === 0) {
      this.#libc.write(this.#fd, packet, BigInt(packet.length));
      return;
    }
    // The header goes into the headroom before the packet: one write, no copy.
    const frame = new Uint8Array(
      packet.buffer,
      packet.byteOffset - VNET_HEADER_LENGTH,
      packet.length + VNET_HEADER_LENGTH,
    );
    writeVnetHeader(frame, offload);
    this.#libc.write(this.#fd, frame, BigInt(frame.length));
  }

  wait(timeoutMs: number): boolean {
    return this.#poll(timeoutMs);
  }

  close(): void {
    this.#release();
  }
}
