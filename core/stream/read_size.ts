/**
 * The size of the next read from a socket: it doubles while reads fill it, up to `max`, and drops
 * back to 2 KiB after a read that used less than an eighth of it. An idle connection then waits
 * on 2 KiB while a bulk one reads `max` at a time.
 */
const MIN_READ = 2 * 1024;

export class ReadSize {
  size = MIN_READ;

  constructor(readonly max: number) {}

  /** Adjusts to a read that returned `n` bytes; returns the size of the next read. */
  after(n: number): number {
    if (n === this.size && this.size < this.max) this.size = Math.min(this.size * 2, this.max);
    else if (n < this.size / 8 && this.size > MIN_READ) this.size = MIN_READ;
    return this.size;
  }
}
