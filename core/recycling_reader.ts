/**
 * Reads a {@link Duplex}'s readable into buffers the consumer gives back. A byte stream (such as
 * `connDuplex`'s) is read with a BYOB reader: each read lands in the previous chunk's memory,
 * handed back with `recycle` once the consumer has copied it on, so a bulk download allocates
 * (and the kernel zero-fills) nothing per read. The buffer starts small and doubles while reads
 * fill it, so an idle connection waits on 2 KiB. Any other stream is read chunk by chunk.
 */

const MIN_READ = 2 * 1024;
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
  let size = MIN_READ;
  let spare: ArrayBuffer | undefined;
  return {
    async read() {
      const memory = spare && spare.byteLength >= size ? spare : new ArrayBuffer(size);
      spare = undefined;
      const { value, done } = await byob.read(new Uint8Array(memory, 0, size));
      if (done || !value) return null;
      if (value.length === size && size < MAX_READ) size *= 2;
      else if (value.length < size / 8 && size > MIN_READ) size = MIN_READ; // quiet again
      return value;
    },
    recycle(chunk) {
      if (chunk.buffer instanceof ArrayBuffer && chunk.buffer.byteLength >= size) {
        spare = chunk.buffer;
      }
    },
    releaseLock: () => byob.releaseLock(),
  };
}
