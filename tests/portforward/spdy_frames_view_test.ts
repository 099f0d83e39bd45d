import { assert, assertEquals } from "../assert.ts";
import { dataFrame, FrameParser } from "../../core/k8s/spdy/frames.ts";
import { concatBytes } from "../../core/stream/concat_bytes.ts";

Deno.test("spdy frames: with viewInput a big frame is a view into the pushed chunk, a small one a copy that keeps no chunk alive", () => {
  const big = new Uint8Array(32 * 1024).fill(1);
  const small = new Uint8Array(100).fill(2);
  const chunk = concatBytes([dataFrame(3, 0, big), dataFrame(3, 0, small)]);
  const [bigFrame, smallFrame] = new FrameParser(undefined, { viewInput: true }).push(chunk);
  assert(bigFrame.kind === "data" && smallFrame.kind === "data");
  assertEquals(bigFrame.data, big);
  assertEquals(smallFrame.data, small);
  assert(bigFrame.data.buffer === chunk.buffer, "the bulk frame is not copied");
  assert(smallFrame.data.buffer !== chunk.buffer, "a small frame holds only its own bytes");
  assertEquals(smallFrame.data.buffer.byteLength, small.length);
});

Deno.test("spdy frames: without viewInput every frame is a copy the caller's buffer can be reused under", () => {
  const chunk = dataFrame(3, 0, new Uint8Array(32 * 1024).fill(1));
  const [frame] = new FrameParser().push(chunk);
  assert(frame.kind === "data");
  chunk.fill(9);
  assertEquals(frame.data, new Uint8Array(32 * 1024).fill(1));
});

Deno.test("spdy frames: a frame that arrives in pieces is assembled in a buffer of its own size and handed out as it is; the bytes after it parse on", () => {
  const big = new Uint8Array(32 * 1024).map((_, i) => i & 0xff);
  const next = new Uint8Array(300).fill(5);
  const stream = concatBytes([dataFrame(3, 0, big), dataFrame(5, 0, next)]);
  const parser = new FrameParser(undefined, { viewInput: true });
  const frames = [];
  for (const [from, to] of [[0, 1000], [1000, 16_000], [16_000, 32_800], [32_800, stream.length]]) {
    const piece = stream.slice(from, to);
    frames.push(...parser.push(piece));
    piece.fill(0); // the pieces are the caller's; only the first frame's view may not outlive them
  }
  assertEquals(frames.length, 2);
  const [first, second] = frames;
  assert(first.kind === "data" && second.kind === "data");
  assertEquals(first.data, big);
  assertEquals(first.data.buffer.byteLength, 8 + big.length, "assembled in a buffer of its size");
  assertEquals([second.streamId, second.data], [5, next]);
});
