/**
 * Fixed-size buffers kept for reuse. Allocating a fresh `Uint8Array` per chunk costs a zero-fill
 * and, for big ones, fresh pages from the kernel — measured at about a sixth of the relay's time
 * in a bulk transfer — so hot paths take and give back instead. Past `limit` spares, given-back
 * buffers are left to the garbage collector: a quiet process holds at most `limit × size`.
 */
export class BufferPool {
  readonly #spares: Uint8Array[] = [];

  constructor(readonly size: number, readonly limit: number) {}

  /** A buffer of `size` bytes, with whatever content it last had. */
  take(): Uint8Array {
    return this.#spares.pop() ?? new Uint8Array(this.size);
  }

  /** Hands a buffer from {@link take} back; the caller must not touch it afterwards. */
  give(buffer: Uint8Array): void {
    if (buffer.byteLength === this.size && this.#spares.length < this.limit) {
      this.#spares.push(buffer);
    }
  }
}
