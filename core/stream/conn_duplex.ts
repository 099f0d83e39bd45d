/**
 * A `Deno.Conn` as a {@link Duplex}: closing the writable half-closes (`closeWrite`, a FIN),
 * `abort` closes the socket at once. (`conn.writable`'s own close would close the whole socket
 * and lose the response to a half-closed request.) Reads size themselves (read_size.ts): an idle
 * connection holds 2 KiB, a bulk one reads 64 KiB at a time; a full read is handed over without a
 * copy. The readable is a byte
 * stream: a BYOB reader reads straight into memory it recycles (core/stream/recycling_reader.ts).
 */
import type { Duplex } from "../../mod.ts";
import { ReadSize } from "./read_size.ts";

const MAX_READ = 64 * 1024;

/**
 * Wraps a connection. `handshake` are bytes already read from it (past a handshake, see
 * core/stream/buffered_conn.ts): the readable yields them before anything else. A promise of them
 * is a handshake still under way (an early dial, DialOptions.early): reads and writes wait for
 * it, and its rejection is theirs.
 */
export function connDuplex(conn: Deno.Conn, handshake?: Uint8Array | Promise<Uint8Array>): Duplex {
  let pending = handshake instanceof Promise ? undefined : handshake;
  let ready: Promise<void> | undefined;
  if (handshake instanceof Promise) {
    ready = handshake.then((rest) => {
      pending = rest;
      ready = undefined;
    });
    ready.catch(() => {}); // a failure is the reads' and writes': with neither, it is no crash
  }
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
  const readSize = new ReadSize(MAX_READ);
  let buffer = new Uint8Array(readSize.size);
  return {
    readable: new ReadableStream({
      type: "bytes",
      async pull(controller: ReadableByteStreamController) {
        // A BYOB reader (recycling_reader.ts) brings the memory; a default reader gets fresh
        // chunks from the adaptive buffer.
        if (ready) {
          try {
            await ready;
          } catch (error) {
            return controller.error(error);
          }
        }
        const request = controller.byobRequest;
        if (pending?.length) {
          const view = request?.view as Uint8Array | undefined;
          const n = Math.min(view?.length ?? pending.length, pending.length);
          if (request) {
            view!.set(pending.subarray(0, n));
            request.respond(n);
          } else controller.enqueue(pending.slice(0, n));
          pending = pending.subarray(n);
          return;
        }
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
          if (n === null) return controller.close();
          // A full read hands the buffer itself over (no copy); a new one takes the next read.
          const full = n === buffer.length;
          controller.enqueue(full ? buffer : buffer.slice(0, n));
          const next = readSize.after(n);
          if (full || next !== buffer.length) buffer = new Uint8Array(next);
        } catch (error) {
          controller.error(error);
        }
      },
      cancel: close,
    }, { highWaterMark: 0 }),
    writable: new WritableStream<Uint8Array>({
      async write(chunk) {
        if (ready) await ready;
        let off = 0;
        while (off < chunk.length) off += await conn.write(chunk.subarray(off));
      },
      async close() {
        if (ready) await ready;
        await conn.closeWrite().catch(() => {});
      },
      abort: close,
    }),
    abort: close,
    writeReleasesChunk: true, // write() resolves once conn.write has taken every byte
  };
}
