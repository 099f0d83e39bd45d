/**
 * The macOS utun behind the device seam (core/net/device/tun_device.ts), like wireguard-go's
 * `tun_darwin.go`: a kernel-control socket (utun.ts), the address (point-to-point, /32) and MTU by
 * ioctl, the routes by PF_ROUTE messages. No offload: utun has none. The packet loop's end is
 * packet_io.ts; the host services (memcpy, a pipe for wake-ups, getifaddrs) are
 * {@link darwinTunHost}. The utun and the routes through it vanish when its socket closes, also
 * after SIGKILL; closing deletes the routes first all the same.
 */
import { copyBytes, cString } from "../linux/libc.ts";
import { ifaddrsIpv4 } from "../linux/local_addresses.ts";
import { TunError } from "../linux/tun.ts";
import {
  type Ipv4Prefix,
  NO_OFFLOAD,
  type TunDevice,
  type TunDeviceOptions,
  type TunHost,
  type Wakeup,
} from "../../core/net/device/tun_device.ts";
import type { Darwin } from "./libsystem.ts";
import { changeRoute, configureUtun, openUtun } from "./utun.ts";

const ENODEV = 19;
const EINVAL = 22;
const F_SETFD = 2;
const FD_CLOEXEC = 1;
const F_GETFL = 3;
const F_SETFL = 4;
const O_NONBLOCK = 0x4;

/** The module the packet loop opens a utun's end with. */
export const DARWIN_PACKET_IO = new URL("./packet_io.ts", import.meta.url).href;

/** The unit for `connect` that makes `name`: "" → 0 (the first free), `utunN` → N+1. */
export function utunUnit(name: string): number {
  if (name === "") return 0;
  const match = /^utun(\d{1,4})$/.exec(name);
  if (!match) {
    throw new TunError(
      `macOS names TUN devices utun0, utun1, …: "${name}" cannot be created — pass utunN or no ` +
        "name",
      EINVAL,
    );
  }
  return Number(match[1]) + 1;
}

/** Opens and configures a utun; closing it removes its routes and the interface. */
export function openDarwinTunDevice(os: Darwin, options: TunDeviceOptions): TunDevice {
  const { fd, name } = openUtun(os, utunUnit(options.name));
  try {
    configureUtun(os, name, options.address, 32, options.mtu);
  } catch (error) {
    os.sym.close(fd);
    throw error;
  }
  const routed: Ipv4Prefix[] = [];
  const via = { address: options.address };
  let closed = false;
  return {
    name,
    address: options.address,
    mtu: options.mtu,
    offload: NO_OFFLOAD,
    ifindex() {
      const index = os.sym.if_nametoindex(cString(name));
      if (index === 0) throw new TunError(`the interface ${name} does not exist`, ENODEV);
      return index;
    },
    addRoutes(prefixes) {
      for (const { address, prefix } of prefixes) {
        changeRoute(os, "add", { dst: address, prefix, via });
        routed.push({ address, prefix });
      }
    },
    packetIo: { module: DARWIN_PACKET_IO, fd, mtu: options.mtu, offload: NO_OFFLOAD },
    close() {
      if (closed) return;
      closed = true;
      for (const { address, prefix } of routed) {
        try {
          changeRoute(os, "delete", { dst: address, prefix, via });
        } catch {
          // The interface's close below takes the route with it.
        }
      }
      os.sym.close(fd);
    },
  };
}

/** memcpy, pipe wake-ups and getifaddrs through libSystem (which the caller keeps open). */
export function darwinTunHost(os: Darwin): TunHost {
  const one = new Uint8Array([1]);
  return {
    copy: copyBytes(os.sym),
    localIpv4Addresses() {
      const head = new BigUint64Array(1);
      if (os.sym.getifaddrs(new Uint8Array(head.buffer)) !== 0) {
        throw new Error(`cannot list the host's addresses (getifaddrs): errno ${os.errno()}`);
      }
      const list = Deno.UnsafePointer.create(head[0]);
      try {
        return ifaddrsIpv4(list, "bsd");
      } finally {
        os.sym.freeifaddrs(list);
      }
    },
    closeDescriptor: (fd) => void os.sym.close(fd),
    openWakeup(): Wakeup {
      const fds = new Int32Array(2);
      os.check(os.sym.pipe(new Uint8Array(fds.buffer)), "create the packet loop's wake-up pipe");
      try {
        for (const fd of fds) {
          // Non-blocking: a full pipe already holds a wake-up, the main thread must not wait.
          os.check(os.fcntl(fd, F_SETFD, FD_CLOEXEC), "set up the wake-up pipe");
          const flags = os.fcntl(fd, F_GETFL, 0);
          os.check(flags, "set up the wake-up pipe");
          os.check(os.fcntl(fd, F_SETFL, flags | O_NONBLOCK), "set up the wake-up pipe");
        }
      } catch (error) {
        os.sym.close(fds[0]);
        os.sym.close(fds[1]);
        throw error;
      }
      return {
        fd: fds[0],
        signal: () => void os.sym.write(fds[1], one, 1n),
        close() {
          os.sym.close(fds[0]);
          os.sym.close(fds[1]);
        },
      };
    },
    close() {},
  };
}
