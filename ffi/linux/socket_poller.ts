/**
 * Waits for any of a few non-blocking sockets to become readable with one `poll` call on one of
 * Deno's blocking-call threads, and runs the socket's handler on the main thread. It polls only
 * while its owner says there is something to wait for (queries in flight) and for at most
 * `intervalMs` at a time, so an idle poller holds no thread and a closed one stops within that.
 * One thread for any number of outstanding replies, where a blocking receive per reply held a
 * thread (and a descriptor) each, and Deno's blocking-call pool is shared by every file and FFI
 * call in the process.
 */
import type { Libc } from "./libc.ts";

const POLLIN = 0x1;
const POLLERR = 0x8;
/** struct pollfd: int fd, short events, short revents. */
const POLLFD_SIZE = 8;

/** A poll loop over registered sockets. */
export class SocketPoller {
  readonly #handlers = new Map<number, () => void>();
  #running = false;
  #closed = false;
  #stopped: Promise<void> = Promise.resolve();

  /**
   * @param busy whether replies are awaited: the loop runs while it is true.
   * @param intervalMs the longest single wait (how soon a finished or closed poller notices).
   */
  constructor(
    readonly libc: Pick<Libc, "pollBlocking">,
    readonly busy: () => boolean,
    readonly intervalMs = 100,
  ) {}

  /** Calls `onReadable` (on the main thread) whenever `fd` has data or a pending error. */
  add(fd: number, onReadable: () => void): void {
    this.#handlers.set(fd, onReadable);
  }

  remove(fd: number): void {
    this.#handlers.delete(fd);
  }

  /**
   * Runs every handler now, without waiting for the poll: takes in what has arrived while the
   * main thread was busy (the handlers never wait, so this costs a receive per socket).
   */
  readNow(): void {
    for (const handler of this.#handlers.values()) handler();
  }

  /** Starts polling if it is not running (call after sending something that expects a reply). */
  wake(): void {
    if (this.#running || this.#closed) return;
    this.#running = true;
    this.#stopped = this.#loop();
  }

  /** Stops polling; resolves when the last wait has returned. */
  close(): Promise<void> {
    this.#closed = true;
    return this.#stopped;
  }

  async #loop(): Promise<void> {
    while (true) {
      // Decided and cleared in one synchronous step, so a wake() right after never finds a loop
      // that is about to end.
      if (this.#closed || !this.busy() || this.#handlers.size === 0) {
        this.#running = false;
        return;
      }
      const fds = [...this.#handlers.keys()];
      // Kept referenced until the call returns: the kernel writes revents into it.
      const pollfds = new Uint8Array(POLLFD_SIZE * fds.length);
      const view = new DataView(pollfds.buffer);
      fds.forEach((fd, i) => {
        view.setInt32(i * POLLFD_SIZE, fd, true);
        view.setInt16(i * POLLFD_SIZE + 4, POLLIN, true);
      });
      const ready = await this.libc.pollBlocking(pollfds, BigInt(fds.length), this.intervalMs);
      if (ready < 0) {
        // EINTR (errno is another thread's here): look again after a moment, never spin.
        await new Promise((resolve) => setTimeout(resolve, 10));
        continue;
      }
      fds.forEach((fd, i) => {
        if ((view.getInt16(i * POLLFD_SIZE + 6, true) & (POLLIN | POLLERR)) === 0) return;
        // A socket closed during the wait may have had its number reused: a handler only ever
        // receives without waiting, so a wrong guess costs one EAGAIN.
        this.#handlers.get(fd)?.();
      });
    }
  }
}
