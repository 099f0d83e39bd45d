/**
 * `poll(2)` on a device and a wake-up descriptor, the packet loop's only sleep. `struct pollfd`
 * (int fd, short events, short revents: 8 bytes) and EINTR (4) are the same on Linux and macOS;
 * the call itself differs (`nfds_t` is 64-bit on Linux, 32-bit on macOS), so each OS passes its
 * own.
 */

const POLLIN = 0x1;
const EINTR = 4;

/**
 * A wait on `deviceFd` and `wakeFd` for readability: `(timeoutMs) => deviceReadable`. A wake-up
 * that arrived is consumed (`drainWake` reads it). Throws when `poll` fails for another reason
 * than a signal.
 */
export function pollReadable(
  deviceFd: number,
  wakeFd: number,
  poll: (fds: Uint8Array, timeoutMs: number) => number,
  errno: () => number,
  drainWake: (into: Uint8Array) => number,
): (timeoutMs: number) => boolean {
  const fds = new Uint8Array(16);
  const view = new DataView(fds.buffer);
  view.setInt32(0, deviceFd, true);
  view.setInt16(4, POLLIN, true);
  view.setInt32(8, wakeFd, true);
  view.setInt16(12, POLLIN, true);
  // An eventfd reads as 8 bytes; a pipe's wake-ups are drained up to this many at once.
  const wakeBuffer = new Uint8Array(64);
  return (timeoutMs) => {
    view.setInt16(6, 0, true);
    view.setInt16(14, 0, true);
    if (poll(fds, timeoutMs) < 0) {
      const code = errno();
      if (code !== EINTR) throw new Error(`poll failed: errno ${code}`);
      return false;
    }
    if (view.getInt16(14, true) & POLLIN) drainWake(wakeBuffer);
    return (view.getInt16(6, true) & POLLIN) !== 0;
  };
}
