/**
 * `poll(2)` on a device and a wake-up descriptor, the packet loop's only sleep. `struct pollfd`
 * (int fd, short events, short revents: 8 bytes) and EINTR (4) are the same on Linux and macOS;
 * the call itself differs (`nfds_t` is 64-bit on Linux, 32-bit on macOS), so each OS passes its
 * own.
 */

const POLLIN = 0x1;
const EINTR = 4;

/**
 * A wait on `deviceFd` and `wakeFd` — and `extraFd` when given (an epoll set of sockets) — for
 * readability: `(timeoutMs) => deviceOrExtraReadable`. `poll` gets the pollfd array and how many
 * entries it has. A wake-up that arrived is consumed (`drainWake` reads it). Throws when `poll`
 * fails for another reason than a signal.
 */
export function pollReadable(
  deviceFd: number,
  wakeFd: number,
  poll: (fds: Uint8Array, count: number, timeoutMs: number) => number,
  errno: () => number,
  drainWake: (into: Uint8Array) => number,
  extraFd?: number,
): (timeoutMs: number) => boolean {
  const count = extraFd === undefined ? 2 : 3;
  const fds = new Uint8Array(8 * count);
  const view = new DataView(fds.buffer);
  [deviceFd, wakeFd, extraFd ?? -1].slice(0, count).forEach((fd, i) => {
    view.setInt32(i * 8, fd, true);
    view.setInt16(i * 8 + 4, POLLIN, true);
  });
  // An eventfd reads as 8 bytes; a pipe's wake-ups are drained up to this many at once.
  const wakeBuffer = new Uint8Array(64);
  return (timeoutMs) => {
    for (let i = 0; i < count; i++) view.setInt16(i * 8 + 6, 0, true);
    if (poll(fds, count, timeoutMs) < 0) {
      const code = errno();
      if (code !== EINTR) throw new Error(`poll failed: errno ${code}`);
      return false;
    }
    if (view.getInt16(14, true) & POLLIN) drainWake(wakeBuffer);
    return (view.getInt16(6, true) & POLLIN) !== 0 ||
      (count === 3 && (view.getInt16(22, true) & POLLIN) !== 0);
  };
}
