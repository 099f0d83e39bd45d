/**
 * A `Deno.Conn` as a {@link Duplex}: closing the writable half-closes (`closeWrite`, a FIN),
 * `abort` closes the socket at once. (`conn.writable`'s own close would close the whole socket
 * and lose the response to a half-closed request.)
 */
import type { Duplex } from "../mod.ts";

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
  const buffer = new Uint8Array(64 * 1024);
  return {
    readable: new ReadableStream<Uint8Array>({
      async pull(controller) {
        try {
          const n = await conn.read(buffer);
          if (n === null) controller.close();
          else controller.enqueue(buffer.slice(0, n));
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
  };
}
