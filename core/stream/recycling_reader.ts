/**
 * Reads a {@link Duplex}'s readable into buffers the consumer gives back. A byte stream (such as
 * `connDuplex`'s) is read with a BYOB reader: each read lands in the previous chunk's memory,
 * handed back with `recycle` once the consumer has copied it on, so a bulk download allocates
 * (and the kernel zero-fills) nothing per read. The buffer starts small and doubles while reads
 * fill it, so an idle connection waits on 2 KiB. Any other stream is read chunk by chunk.
 */

import { ReadSize } from "./read_size.ts";

// 256 KiB reads instead of 64 KiB: a third less relay time per downloaded byte (fewer ops, wakes).
const MAX_READ = 256 * 1024;

export interface RecyclingReader {
  /** The next chunk, or null at the end. */
  read(): Promise<Uint8Array | null>;
  /** The consumer is done with `chunk`: its memory may take the next read. */
  recycle(chunk: Uint8Array): void;
  releaseLock(): void;
}

/** A reader over `readable`, recycling when it is a byte stream. */
export function recyclingReader(readable: ReadableStream<Uint8Array>): RecyclingReader {
  let byob: ReadableStreamBYOBReader;
  try {
    byob = readable.getReader({ mode: "byob" });
  } catch {
    const reader = readable.getReader(); // not a byte stream
    return {
      read: async () => (await reader.read()).value ?? null,
      recycle: () => {},
      releaseLock: () => reader.releaseLock(),
    };
  }
  const readSize = new ReadSize(MAX_READ);
  let spare: ArrayBuffer | undefined;
  return {
    async read() {
      const size = readSize.size;
      const memory = spare && spare.byteLength >= size ? spare : new ArrayBuffer(size);
      spare = undefined;
      const { value, done } = await byob.read(new Uint8Array(memory, 0, size));
      if (done || !value) return null;
      readSize.after(value.length);
      return value;
    },
    recycle(chunk) {
      if (chunk.buffer instanceof ArrayBuffer && chunk.buffer.byteLength >= readSize.size) {
        spare = chunk.buffer;
      }
    },
    releaseLock: () => byob.releaseLock(),
  };
}
