/**
 * The seam between the data plane and the operating system's TUN device, in the shape of
 * wireguard-go's `tun/tun.go`: one interface here, one module per OS (`ffi/linux/tun_device.ts`,
 * `ffi/darwin/tun_device.ts`). Nothing under `core/` imports an OS module: the composition root
 * (`cli/`) opens the device and the {@link TunHost} for the OS it runs on and hands both in.
 *
 * The device has two ends because the packet loop runs in a Worker:
 * - {@link TunDevice}, on the main thread: the device's name, address, MTU, offload capabilities
 *   and routes, and its lifetime (the interface and its routes go when it closes).
 * - {@link PacketIo}, in the packet loop's Worker: reads and writes batches of packets, with the
 *   device's framing (Linux's virtio header, macOS's 4-byte address family, or none). A Worker
 *   receives plain data only, so the device describes its end as a {@link PacketIoSpec}, and the
 *   Worker imports the module the spec names to open it.
 */
import type { LoopSockets } from "./loop_sockets.ts";
import type { CopyBytes } from "../copy.ts";
import type { Offload } from "../wire/virtio.ts";

/** What the kernel does for the packets of a device (none of it on macOS's utun). */
export interface OffloadCapabilities {
  /**
   * The kernel finishes the TCP checksums we leave partial, and vouches for the checksums of the
   * packets it hands us.
   */
  checksum: boolean;
  /** The kernel takes TCP super-packets and cuts them into MSS-sized segments (TSO). */
  segmentation: boolean;
}

/** No offload: checksums computed in TypeScript, packets of at most the MTU. */
export const NO_OFFLOAD: OffloadCapabilities = { checksum: false, segmentation: false };

/** An IPv4 prefix (host byte order). */
export interface Ipv4Prefix {
  address: number;
  prefix: number;
}

/** How to open a device: the same options on every OS. */
export interface TunDeviceOptions {
  /** The interface name ("" = the OS picks one; macOS always picks `utunN`). */
  name: string;
  /** The device's own address (a /32: the VIP range is a route through it). */
  address: number;
  mtu: number;
  /** Ask for checksum and segmentation offload (Linux only; done without when refused). */
  offload: boolean;
}

/** An open TUN device, configured (address, MTU, up), on the main thread. */
export interface TunDevice {
  readonly name: string;
  readonly address: number;
  readonly mtu: number;
  readonly offload: OffloadCapabilities;
  /** Its interface index (for routes and rules other modules add through it). */
  ifindex(): number;
  /** Routes the prefixes into the device; they go with it when it closes (also after a crash). */
  addRoutes(prefixes: readonly Ipv4Prefix[]): void;
  /** The packet loop's end of the device. */
  readonly packetIo: PacketIoSpec;
  /** Removes the interface and its routes. */
  close(): void;
}

/** The packet loop's end of a device, as plain data for a Worker. */
export interface PacketIoSpec {
  /** URL of the module that opens it: it exports {@link PacketIoModule.openPacketIo}. */
  module: string;
  /** The device's file descriptor (owned by the {@link TunDevice}: the loop never closes it). */
  fd: number;
  mtu: number;
  offload: OffloadCapabilities;
}

/** What a module named by {@link PacketIoSpec.module} exports. */
export interface PacketIoModule {
  /**
   * Opens the loop's end of the device; `wakeFd` is polled beside it ({@link Wakeup}). Sockets
   * the loop opens (PacketIo.sockets) are recorded in `sockets` (socket_registry.ts).
   */
  openPacketIo(spec: PacketIoSpec, wakeFd: number, sockets: SharedArrayBuffer): PacketIo;
}

/**
 * The packet loop's end of a device: non-blocking batch reads and writes, and the one place the
 * loop sleeps. Used by one thread only (errno is per thread).
 */
export interface PacketIo {
  /** A copy for views of shared memory (the rings between the loop and the main thread). */
  readonly copy: CopyBytes;
  /**
   * Reads up to `max` packets, until the device has no more: each IPv4 packet goes to `take`
   * (a view valid only during the call) with whether the kernel vouches for its checksums.
   * Returns the bytes read (0: nothing was waiting). Other families (IPv6) are skipped.
   */
  receive(max: number, take: (packet: Uint8Array, checksumTrusted: boolean) => void): number;
  /**
   * Writes one packet. `packet` has {@link FRAME_HEADROOM} free bytes before it in its buffer,
   * where the device's framing goes (no copy). A full device queue drops the packet: a loss TCP's
   * timers repair.
   */
  transmit(packet: Uint8Array, offload: Offload): void;
  /**
   * Sleeps until the device has packets, a watched socket is ready, the wake-up fd was signalled,
   * or `timeoutMs` passed (0: only looks); consumes the wake-up. Returns whether the device has
   * packets or a socket is ready.
   */
  wait(timeoutMs: number): boolean;
  /** TCP sockets the loop may relay itself; absent where the OS module offers none. */
  readonly sockets?: LoopSockets;
  /** Releases what the loop's end holds (never the device's descriptor). */
  close(): void;
}

/** A wake-up channel: the main thread signals, the packet loop polls {@link Wakeup.fd}. */
export interface Wakeup {
  /** The descriptor the loop polls (an eventfd on Linux, a pipe's read end on macOS). */
  readonly fd: number;
  signal(): void;
  close(): void;
}

/** The host services the data plane needs beside the device, for the OS it runs on. */
export interface TunHost {
  /** A copy for views of shared memory (V8 copies unaligned shared views byte by byte). */
  readonly copy: CopyBytes;
  /** The host's IPv4 addresses (host byte order), sorted, without duplicates. */
  localIpv4Addresses(): number[];
  openWakeup(): Wakeup;
  /** Closes a descriptor a terminated packet loop left open (socket_registry.ts). */
  closeDescriptor(fd: number): void;
  close(): void;
}

/**
 * Free bytes every outgoing packet has before it in its buffer (the stack's headroom): room for
 * the largest framing, Linux's 10-byte virtio header (macOS's is 4).
 */
export { VNET_HEADER_LENGTH as FRAME_HEADROOM } from "../wire/virtio.ts";
