/**
 * The TUN device and host services of the OS k8stun runs on (core/net/device/tun_device.ts): the
 * one place that picks an OS module, used by the composition root (`cli/`).
 */
import type { TunDevice, TunDeviceOptions, TunHost } from "../core/net/device/tun_device.ts";
import { openLibc } from "./linux/libc.ts";
import { linuxTunHost, openLinuxTunDevice } from "./linux/tun_device.ts";
import { Darwin } from "./darwin/libsystem.ts";
import { darwinTunHost, openDarwinTunDevice } from "./darwin/tun_device.ts";

/** Opens devices and provides the host services of one OS. */
export interface TunPlatform {
  readonly host: TunHost;
  /** Opens and configures a device (address, MTU, up); the caller hands it to the data plane. */
  openDevice(options: TunDeviceOptions): TunDevice;
  /** After the data plane closed. */
  close(): void;
}

/** The platform of this OS; throws for one k8stun has no TUN backend for. */
export function openTunPlatform(os: typeof Deno.build.os = Deno.build.os): TunPlatform {
  switch (os) {
    case "linux": {
      const lib = openLibc();
      return {
        host: linuxTunHost(lib.symbols),
        openDevice: (options) => openLinuxTunDevice(lib.symbols, options),
        close: () => lib.close(),
      };
    }
    case "darwin": {
      const os = new Darwin();
      return {
        host: darwinTunHost(os),
        openDevice: (options) => openDarwinTunDevice(os, options),
        close: () => os.close(),
      };
    }
    default:
      throw new Error(
        `TUN mode is not available on ${os} (Linux and macOS only); use k8stun proxy instead`,
      );
  }
}
