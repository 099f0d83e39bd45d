/**
 * The Linux TUN behind the device seam (core/net/device/tun_device.ts), like wireguard-go's
 * `tun_linux.go`: `/dev/net/tun` (tun.ts), then MTU, the address alone (/32) and link up over
 * rtnetlink (rtnetlink.ts, docs/platform.md §3.3). Two backends, one per framing: with offload
 * (IFF_VNET_HDR, checksum and TSO by the kernel) when asked for and the kernel agrees, without
 * (bare packets of the MTU, checksums in TypeScript — the path macOS takes) otherwise. The
 * packet loop's end is packet_io.ts; the host services (memcpy, eventfd, getifaddrs) are
 * {@link linuxTunHost}.
 */
import { copyBytes, errno, type Libc } from "./libc.ts";
import { openTun, TunError } from "./tun.ts";
import { interfaceIndex, RouteTable } from "./rtnetlink.ts";
import { localIpv4Addresses } from "./local_addresses.ts";
import {
  type Ipv4Prefix,
  NO_OFFLOAD,
  type OffloadCapabilities,
  type TunDevice,
  type TunDeviceOptions,
  type TunHost,
  type Wakeup,
} from "../../core/net/device/tun_device.ts";

const EFD_NONBLOCK = 0x800;
const EFD_CLOEXEC = 0x80000;
/** What the virtio header buys: the kernel finishes checksums and cuts super-packets. */
const VIRTIO_OFFLOAD: OffloadCapabilities = { checksum: true, segmentation: true };

/** The module the packet loop opens a Linux TUN's end with. */
export const LINUX_PACKET_IO = new URL("./packet_io.ts", import.meta.url).href;

/**
 * Packets the kernel queues for the packet loop before it drops (a TUN's default is 500). While
 * the loop's thread is descheduled on a busy machine a burst overflows 500 (the kernel counts
 * them as TX drops), and every drop costs a TCP retransmission timeout: 500 concurrent
 * connections under full CPU load took 37–150 s with 500, 21–25 s with 1000.
 */
const TX_QUEUE_LENGTH = 1000;

/** Opens and configures a TUN; closing it removes the interface and its routes. */
export function openLinuxTunDevice(libc: Libc, options: TunDeviceOptions): TunDevice {
  const tun = openTun(libc, options.name, { offload: options.offload });
  try {
    // Routes are data k8stun owns, and they vanish with the TUN, also after a crash.
    const table = RouteTable.open(libc);
    try {
      table.configureLink(
        interfaceIndex(tun.name, libc),
        options.address,
        options.mtu,
        TX_QUEUE_LENGTH,
      );
    } finally {
      table.close();
    }
  } catch (error) {
    libc.close(tun.fd);
    throw error;
  }
  const offload = tun.vnetHeader ? VIRTIO_OFFLOAD : NO_OFFLOAD;
  let closed = false;
  return {
    name: tun.name,
    address: options.address,
    mtu: options.mtu,
    offload,
    ifindex: () => interfaceIndex(tun.name, libc),
    addRoutes(prefixes: readonly Ipv4Prefix[]) {
      const table = RouteTable.open(libc);
      try {
        const ifindex = interfaceIndex(tun.name, libc);
        for (const { address, prefix } of prefixes) table.add({ dst: address, prefix, ifindex });
      } finally {
        table.close();
      }
    },
    packetIo: { module: LINUX_PACKET_IO, fd: tun.fd, mtu: options.mtu, offload },
    close() {
      if (closed) return;
      closed = true;
      libc.close(tun.fd); // the TUN and its routes vanish with the last descriptor
    },
  };
}

/** memcpy, eventfd wake-ups and getifaddrs through `libc` (which the caller keeps open). */
export function linuxTunHost(libc: Libc): TunHost {
  const one = new Uint8Array(new BigUint64Array([1n]).buffer);
  return {
    copy: copyBytes(libc),
    localIpv4Addresses: () => localIpv4Addresses(libc),
    closeDescriptor: (fd) => void libc.close(fd),
    openWakeup(): Wakeup {
      const fd = libc.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
      if (fd < 0) {
        const code = errno(libc);
        throw new TunError(`cannot create the packet loop's wake-up eventfd: errno ${code}`, code);
      }
      return {
        fd,
        // A full counter (EAGAIN) means a wake-up is pending already.
        signal: () => void libc.write(fd, one, 8n),
        close: () => void libc.close(fd),
      };
    },
    close() {},
  };
}
