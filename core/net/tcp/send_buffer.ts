/**
 * Bytes accepted from the relay and not yet acknowledged by the application's TCP, from SND.UNA:
 * a queue of fixed-size blocks the bytes are copied into. Blocks come from a pool shared by the
 * thread's connections and go back once acknowledged, so a bulk transfer allocates (and the
 * kernel zero-fills) nothing in its steady state, and an idle connection holds no block at all.
 */

import { BufferPool } from "../../stream/buffer_pool.ts";
import { type CopyBytes, copyWithSet } from "../copy.ts";

const BLOCK = 64 * 1024;
/** Blocks kept for reuse by the thread's connections: a few busy flows' worth. */
const blocks = new BufferPool(BLOCK, 64);

export class SendBuffer {
  readonly #copy: CopyBytes;
  #blocks: Uint8Array[] = [];
  #head = 0; // bytes of blocks[0] already acknowledged
  #tail = BLOCK; // bytes used in the last block (BLOCK: full, or no block)
  #length = 0;

  constructor(copy: CopyBytes = copyWithSet) {
    this.#copy = copy;
  }

  /** Bytes held (from SND.UNA). */
  get length(): number {
    return this.#length;
  }

  /** Appends a copy of `data`; the caller may reuse it at once. */
  push(data: Uint8Array): void {
    let at = 0;
    while (at < data.length) {
      if (this.#tail === BLOCK) {
        this.#blocks.push(blocks.take());
        this.#tail = 0;
      }
      const n = Math.min(BLOCK - this.#tail, data.length - at);
      const last = this.#blocks[this.#blocks.length - 1];
      this.#copy(last.subarray(this.#tail, this.#tail + n), data.subarray(at, at + n));
      this.#tail += n;
      at += n;
    }
    this.#length += data.length;
  }

  /** Drops `n` acknowledged bytes from the front. */
  drop(n: number): void {
    n = Math.min(n, this.#length);
    this.#length -= n;
    this.#head += n;
    while (this.#blocks.length > 0) {
      const used = this.#blocks.length === 1 ? this.#tail : BLOCK;
      if (this.#head < used) break;
      this.#head -= used;
      blocks.give(this.#blocks.shift()!);
      if (this.#blocks.length === 0) this.#tail = BLOCK;
    }
    if (this.#length === 0) this.#head = 0;
  }

  /** Copies `length` bytes starting `offset` bytes after SND.UNA into `out` at `at`. */
  copy(offset: number, length: number, out: Uint8Array, at: number): void {
    let position = this.#head + offset;
    let index = Math.floor(position / BLOCK);
    position -= index * BLOCK;
    while (length > 0 && index < this.#blocks.length) {
      const used = index === this.#blocks.length - 1 ? this.#tail : BLOCK;
      const n = Math.min(used - position, length);
      out.set(this.#blocks[index].subarray(position, position + n), at);
      at += n;
      length -= n;
      position = 0;
      index++;
    }
  }

  clear(): void {
    for (const block of this.#blocks) blocks.give(block);
    this.#blocks = [];
    this.#head = 0;
    this.#tail = BLOCK;
    this.#length = 0;
  }
}
