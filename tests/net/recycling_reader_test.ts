/** Reading a dialed connection into recycled memory (core/stream/recycling_reader.ts, core/stream/conn_duplex.ts). */
import { assert, assertEquals } from "../assert.ts";
import { recyclingReader } from "../../core/stream/recycling_reader.ts";
import { connDuplex } from "../../core/stream/conn_duplex.ts";

Deno.test("recycling reader: a connection's bytes arrive in order in reused memory, growing from 2 KiB", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const total = 4 * 1024 * 1024;
  const served = (async () => {
    const conn = await listener.accept();
    const payload = new Uint8Array(total);
    for (let i = 0; i < total; i++) payload[i] = (i * 7) & 0xff;
    for (let at = 0; at < total;) at += await conn.write(payload.subarray(at));
    conn.close();
  })();
  const { port } = listener.addr as Deno.NetAddr;
  const duplex = connDuplex(await Deno.connect({ hostname: "127.0.0.1", port }));
  const reader = recyclingReader(duplex.readable);
  // Where each chunk's memory lives (a transferred buffer is a new object over the same memory).
  const memories = new Set<bigint>();
  let largest = 0;
  let received = 0;
  for (let chunk = await reader.read(); chunk; chunk = await reader.read()) {
    for (let i = 0; i < chunk.length; i++) {
      if (chunk[i] !== ((received + i) * 7 & 0xff)) throw new Error(`byte ${received + i}`);
    }
    received += chunk.length;
    largest = Math.max(largest, chunk.length);
    memories.add(Deno.UnsafePointer.value(Deno.UnsafePointer.of(chunk.buffer as ArrayBuffer)));
    reader.recycle(chunk);
  }
  assertEquals(received, total);
  assert(largest >= 64 * 1024 && largest <= 256 * 1024, `largest read ${largest}`);
  // Reads reuse the recycled memory: a handful of buffers (one per size step), not one per read.
  assert(memories.size <= 12, `${memories.size} buffers for ${total} bytes`);
  await served;
  listener.close();
  duplex.abort();
});

Deno.test("recycling reader: a stream that is not a byte stream is read chunk by chunk", async () => {
  const chunks = [new Uint8Array([1, 2]), new Uint8Array([3])];
  const reader = recyclingReader(ReadableStream.from(chunks));
  assertEquals(await reader.read(), chunks[0]);
  reader.recycle(chunks[0]); // harmless
  assertEquals(await reader.read(), chunks[1]);
  assertEquals(await reader.read(), null);
});
