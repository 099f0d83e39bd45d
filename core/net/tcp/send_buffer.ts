/**
 * Bytes accepted from the relay and not yet acknowledged by the application's TCP: a chunk list
 * that starts at SND.UNA. Segments copy out of it at any offset; ACKs drop from the front.
 */
export class SendBuffer {
  #chunks: Uint8Array[] = [];
  #head = 0; // bytes of chunks[0] already acknowledged
  #length = 0;

  /** Bytes held (from SND.UNA). */
  get length(): number {
    return this.#length;
  }

  push(data: Uint8Array): void {
    if (data.length === 0) return;
    this.#chunks.push(data);
    this.#length += data.length;
  }

  /** Drops `n` acknowledged bytes from the front. */
  drop(n: number): void {
    n = Math.min(n, this.#length);
    this.#length -= n;
    while (n > 0) {
      const first = this.#chunks[0];
      const left = first.length - this.#head;
      if (n < left) {
        this.#head += n;
        return;
      }
      n -= left;
      this.#chunks.shift();
      this.#head = 0;
    }
  }

  /** Copies `length` bytes starting `offset` bytes after SND.UNA into `out` at `at`. */
  copy(offset: number, length: number, out: Uint8Array, at: number): void {
    let skip = offset + this.#head;
    for (const chunk of this.#chunks) {
      if (length <= 0) return;
      if (skip >= chunk.length) {
        skip -= chunk.length;
        continue;
      }
      const n = Math.min(chunk.length - skip, length);
      out.set(chunk.subarray(skip, skip + n), at);
      at += n;
      length -= n;
      skip = 0;
    }
  }

  clear(): void {
    this.#chunks = [];
    this.#head = 0;
    this.#length = 0;
  }
}
