/**
 * A `Deno.Conn` as a {@link Duplex}: closing the writable half-closes (`closeWrite`, a FIN),
 * `abort` closes the socket at once. (`conn.writable`'s own close would close the whole socket
 * and lose the response to a half-closed request.) The read buffer starts small and doubles
 * while reads fill it, so an idle connection holds 2 KiB instead of 64 KiB and a bulk one still
 * reads 64 KiB at a time; a full read is handed over without a copy. The readable is a byte
 * stream: a BYOB reader reads straight into memory it recycles (core/recycling_reader.ts).
 */
import type { Duplex } from "../mod.ts";

const MIN_READ = 2 * 1024;
const MAX_READ = 64 * 1024;

/** Wraps a connection. */
export function connDuplex(conn: Deno.Conn): Duplex {
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    try {
      conn.close();
    } catch {
      // closed already
    }
  };
  let buffer = new Uint8Array(MIN_READ);
  return {
    readable: new ReadableStream({
      type: "bytes",
      async pull(controller: ReadableByteStreamController) {
        // A BYOB reader (recycling_reader.ts) brings the memory; a default reader gets fresh
        // chunks from the adaptive buffer.
        const request = controller.byobRequest;
        try {
          if (request) {
            const n = await conn.read(request.view as Uint8Array);
            if (n === null) {
              controller.close();
              request.respond(0);
            } else request.respond(n);
            return;
          }
          const n = await conn.read(buffer);
          if (n === null) controller.close();
          else if (n === buffer.length) {
            // A full read hands the buffer itself over (no copy) and grows the next one.
            controller.enqueue(buffer);
            buffer = new Uint8Array(Math.min(n * 2, MAX_READ));
          } else {
            controller.enqueue(buffer.slice(0, n));
            if (n < buffer.length / 8 && buffer.length > MIN_READ) {
              buffer = new Uint8Array(MIN_READ); // quiet again: give the memory back
            }
          }
        } catch (error) {
          controller.error(error);
        }
      },
      cancel: close,
    }, { highWaterMark: 0 }),
    writable: new WritableStream<Uint8Array>({
      async write(chunk) {
        let off = 0;
        while (off < chunk.length) off += await conn.write(chunk.subarray(off));
      },
      async close() {
        await conn.closeWrite().catch(() => {});
      },
      abort: close,
    }),
    abort: close,
    writeReleasesChunk: true, // write() resolves once conn.write has taken every byte
  };
}
