import { assert, assertEquals } from "../assert.ts";
import {
  controlFrame,
  dataFrame,
  FLAG_FIN,
  FrameParser,
  PING,
} from "../../core/k8s/spdy/frames.ts";
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

/** Frames of several streams, data and control, and their bodies per stream (FIN marks the end). */
function mixedStream() {
  const random = (n: number, seed: number) =>
    new Uint8Array(n).map((_, i) => (i * 31 + seed) & 0xff);
  const parts = [
    dataFrame(1, 0, random(32 * 1024, 1)),
    controlFrame(PING, 0, new Uint8Array([0, 0, 0, 7])),
    dataFrame(3, 0, random(5, 2)),
    dataFrame(1, 0, new Uint8Array(0)),
    dataFrame(3, FLAG_FIN, random(20_000, 3)),
    dataFrame(1, FLAG_FIN, random(70_000, 4)),
  ];
  return concatBytes(parts);
}

/** Pushes `stream` cut at `cuts`; returns each stream's bytes, FIN flags seen, and controls. */
function parseCut(stream: Uint8Array, cuts: number[], options: { streamData?: boolean }) {
  const parser = new FrameParser(undefined, { viewInput: true, ...options });
  const bodies = new Map<number, Uint8Array[]>();
  const fins: number[] = [];
  let controls = 0;
  let frames = 0;
  const edges = [0, ...cuts, stream.length];
  for (let i = 0; i + 1 < edges.length; i++) {
    const chunk = stream.slice(edges[i], edges[i + 1]);
    for (const frame of parser.push(chunk)) {
      frames++;
      if (frame.kind === "control") {
        controls++;
        continue;
      }
      // A streamed piece is a view into the chunk: the session copies or queues it at once.
      const parts = bodies.get(frame.streamId) ?? [];
      parts.push(frame.data.slice());
      bodies.set(frame.streamId, parts);
      if (frame.flags & FLAG_FIN) fins.push(frame.streamId);
    }
  }
  const joined = new Map([...bodies].map(([id, parts]) => [id, concatBytes(parts)]));
  return { joined, fins, controls, frames };
}

Deno.test("spdy frames: with streamData a data frame's body is handed on as it arrives, wherever the chunks are cut (header, body, between frames), the same bytes and FINs as assembled frames", () => {
  const stream = mixedStream();
  const whole = parseCut(stream, [], {});
  let seed = 7;
  const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (let round = 0; round < 200; round++) {
    const cuts = [
      ...new Set(
        Array.from(
          { length: 1 + Math.floor(next() * 12) },
          () => 1 + Math.floor(next() * (stream.length - 1)),
        ),
      ),
    ].sort((a, b) => a - b);
    const streamed = parseCut(stream, cuts, { streamData: true });
    assertEquals(streamed.joined, whole.joined, `cut at ${cuts}`);
    assertEquals(streamed.fins, whole.fins, `FIN only on each frame's last piece (cut at ${cuts})`);
    assertEquals(streamed.controls, whole.controls);
  }
  // Every byte cut: a body arrives a byte at a time and is never assembled.
  const byByte = parseCut(stream, Array.from({ length: stream.length - 1 }, (_, i) => i + 1), {
    streamData: true,
  });
  assertEquals(byByte.joined, whole.joined);
  assertEquals(byByte.fins, whole.fins);
});

Deno.test("spdy frames: with streamData a 32 KiB frame over three 16 KiB-ish chunks costs no buffer of its own: each piece is a view into its chunk", () => {
  const body = new Uint8Array(32 * 1024).fill(9);
  const stream = dataFrame(1, FLAG_FIN, body);
  const parser = new FrameParser(undefined, { viewInput: true, streamData: true });
  const chunks = [stream.slice(0, 16_384), stream.slice(16_384, 32_768), stream.slice(32_768)];
  const pieces = chunks.map((chunk) => {
    const frames = parser.push(chunk);
    assertEquals(frames.length, 1);
    const [frame] = frames;
    assert(frame.kind === "data");
    assert(frame.data.buffer === chunk.buffer, "a piece is a view, not a copy");
    return frame;
  });
  assertEquals(pieces.map((p) => p.flags & FLAG_FIN), [0, 0, FLAG_FIN]);
  assertEquals(concatBytes(pieces.map((p) => p.kind === "data" ? p.data : new Uint8Array())), body);
});
