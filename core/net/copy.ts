/**
 * How the packet path copies bytes between buffers. The default is `set`; the packet loop takes
 * the OS's `memcpy` from its device (PacketIo.copy, core/net/device/tun_device.ts) because its
 * bytes come from shared memory, which V8 copies byte by byte when the two offsets differ in
 * alignment.
 */

/** Copies `src` into the start of `dst`. */
export type CopyBytes = (dst: Uint8Array, src: Uint8Array) => void;

/** `dst.set(src)`: correct everywhere, slow for big unaligned views of shared memory. */
export const copyWithSet: CopyBytes = (dst, src) => dst.set(src);
