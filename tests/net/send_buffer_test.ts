/** The send buffer's pooled blocks (core/net/tcp/send_buffer.ts) against a plain byte model. */
import { assertEquals } from "../assert.ts";
import { SendBuffer } from "../../core/net/tcp/send_buffer.ts";

Deno.test("send buffer: pushes, acks and segment copies across 64 KiB blocks match a byte model", () => {
  const buffer = new SendBuffer();
  let model: number[] = [];
  let next = 0;
  let seed = 12345;
  const random = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  for (let step = 0; step < 1000; step++) {
    const action = random(3);
    if (action === 0) {
      // Sizes from 1 byte to two blocks, so pushes start, fill and span blocks.
      const data = new Uint8Array(1 + random(140_000));
      for (let i = 0; i < data.length; i++) data[i] = (next + i) & 0xff;
      next += data.length;
      buffer.push(data);
      data.fill(0); // the buffer keeps its own copy
      model = model.concat(
        Array.from({ length: data.length }, (_, i) => (next - data.length + i) & 0xff),
      );
    } else if (action === 1) {
      const n = random(model.length + 1);
      buffer.drop(n);
      model = model.slice(n);
    } else if (model.length > 0) {
      const offset = random(model.length);
      const length = 1 + random(model.length - offset);
      const out = new Uint8Array(length + 3);
      buffer.copy(offset, length, out, 3);
      assertEquals(Array.from(out.subarray(3)), model.slice(offset, offset + length));
    }
    assertEquals(buffer.length, model.length);
    if (model.length > 400_000) {
      buffer.drop(model.length);
      model = [];
    }
  }
  buffer.clear();
  assertEquals(buffer.length, 0);
});
