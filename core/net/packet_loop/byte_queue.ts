/**
 * Bytes waiting to be written, in one growable buffer: appended as they arrive, written from one
 * view, dropped from the front as they go. A flow's segments of one turn leave in one write
 * instead of one per segment. Memory is taken when bytes wait and given back once a large queue
 * drains, so an idle connection holds next to nothing.
 */

/** Kept after draining; a larger buffer is released (it served a burst). */
const KEEP_BYTES = 16 * 1024;
const EMPTY = new Uint8Array(0);

export class ByteQueue {
  #buffer: Uint8Array = EMPTY;
  #start = 0;
  #end = 0;

  get length(): number {
    return this.#end - this.#start;
  }

  /** Copies `bytes` to the end of the queue. */
  append(bytes: Uint8Array): void {
    if (this.#end + bytes.length > this.#buffer.length) this.#makeRoom(bytes.length);
    this.#buffer.set(bytes, this.#end);
    this.#end += bytes.length;
  }

  /** The waiting bytes (a view, valid until the next append or consume). */
  view(): Uint8Array {
    return this.#buffer.subarray(this.#start, this.#end);
  }

  /** Drops `n` bytes from the front (they were written). */
  consume(n: number): void {
    this.#start += n;
    if (this.#start < this.#end) return;
    this.#start = this.#end = 0;
    if (this.#buffer.length > KEEP_BYTES) this.#buffer = EMPTY;
  }

  #makeRoom(more: number): void {
    const length = this.length;
    if (length + more <= this.#buffer.length) {
      this.#buffer.copyWithin(0, this.#start, this.#end);
    } else {
      const grown = new Uint8Array(Math.max(2 * this.#buffer.length, length + more, KEEP_BYTES));
      grown.set(this.view());
      this.#buffer = grown;
    }
    this.#start = 0;
    this.#end = length;
  }
}
