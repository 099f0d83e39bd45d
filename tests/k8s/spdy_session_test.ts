/**
 * The generic SPDY/3.1 session (core/k8s/spdy/session.ts) against a scripted peer over an
 * in-memory link: stream ids and headers, delivery by readable or handler, FIN, flow-control
 * windows both ways, backpressure, RST_STREAM and PING. Nothing here knows port-forward.
 */
import { assert, assertEquals, assertMatch } from "../assert.ts";
import {
  controlFrame,
  dataFrame,
  FLAG_FIN,
  FrameParser,
  payloadStreamId,
  payloadWord,
  PING,
  RST_CANCEL,
  RST_FLOW_CONTROL_ERROR,
  RST_STREAM,
  rstStreamPayload,
  type SpdyFrame,
  SYN_REPLY,
  SYN_STREAM,
  synReplyPayload,
  WINDOW_UPDATE,
  windowUpdatePayload,
} from "../../core/k8s/spdy/frames.ts";
import { HeaderBlockEncoder, HeaderDecompressor } from "../../core/k8s/spdy/headers.ts";
import { concatBytes } from "../../core/stream/concat_bytes.ts";
import { seededRandom } from "../lab/pseudo_random.ts";
import {
  type SessionFailures,
  type SpdyLink,
  SpdySession,
  type SpdySessionOptions,
} from "../../core/k8s/spdy/session.ts";

const KiB = 1024;

const failures: SessionFailures = {
  closed: () => new Error("closed"),
  broken: (reason) => new Error(`broken: ${reason}`),
  peerReset: () => new Error("peer reset"),
  streamFlowControl: () => new Error("stream flow control"),
  reset: () => new Error("reset"),
};

/** A peer that records the session's frames and sends its own, all synchronously. */
function scriptedPeer() {
  const parser = new FrameParser();
  const frames: SpdyFrame[] = [];
  let handlers: Parameters<SpdyLink["listen"]>[0] | undefined;
  const state = { paused: false, pauses: 0, open: true, unsent: 0 };
  const link: SpdyLink = {
    get open() {
      return state.open;
    },
    get bufferedAmount() {
      return state.unsent;
    },
    send: (frame) => void frames.push(...parser.push(frame.slice())),
    sendData(header, body) {
      const frame = new Uint8Array(header.length + body.length);
      frame.set(header);
      frame.set(body, header.length);
      frames.push(...parser.push(frame));
    },
    pause() {
      state.paused = true;
      state.pauses++;
    },
    resume: () => void (state.paused = false),
    terminate: () => void (state.open = false),
    close: () => void (state.open = false),
    listen: (h) => void (handlers = h),
  };
  const controls = (type: number) =>
    frames.filter((f): f is Extract<SpdyFrame, { kind: "control" }> =>
      f.kind === "control" && f.type === type
    );
  const dataOn = (id: number) =>
    frames.filter((f): f is Extract<SpdyFrame, { kind: "data" }> =>
      f.kind === "data" && f.streamId === id
    );
  const replies = new HeaderBlockEncoder();
  return {
    link,
    state,
    frames,
    controls,
    dataOn,
    deliver(frame: Uint8Array) {
      handlers!.heard();
      handlers!.bytes(frame);
    },
    reply(id: number) {
      this.deliver(controlFrame(SYN_REPLY, 0, synReplyPayload(id, replies.encode([]))));
    },
    closeLink: () => handlers!.closed(),
  };
}

function sessionOver(peer: ReturnType<typeof scriptedPeer>, options: Partial<SpdySessionOptions>) {
  return new SpdySession(peer.link, {
    streamWindow: 64 * KiB,
    sessionWindow: 1024 * KiB,
    sendHighWater: 1024 * KiB,
    maxDataFrame: 16 * KiB,
    failures,
    ...options,
  });
}

const ticks = async (n = 5) => {
  for (let i = 0; i < n; i++) await new Promise((r) => setTimeout(r, 0));
};

Deno.test("spdy session: streams open with consecutive odd ids and their headers; replies, bytes and FIN reach each stream by its delivery", async () => {
  const peer = scriptedPeer();
  const session = sessionOver(peer, {});
  const events: string[] = [];
  const [control, body] = session.open([
    {
      headers: [["role", "control"]],
      delivery: "handler",
      receiveOnly: true,
      handlers: {
        replied: () => events.push("control replied"),
        received: (bytes) => events.push(`control got ${new TextDecoder().decode(bytes)}`),
        fin: () => events.push("control fin"),
      },
    },
    { headers: [["role", "body"], ["n", "7"]], delivery: "readable" },
  ]);
  assertEquals([control.id, body.id], [1, 3]);
  const syns = peer.controls(SYN_STREAM);
  assertEquals(syns.map((f) => payloadStreamId(f.payload)), [1, 3]);
  const inflate = new HeaderDecompressor();
  try {
    assertEquals([...await inflate.decompress(syns[0].payload.subarray(10))], [[
      "role",
      "control",
    ]]);
    assertEquals([...await inflate.decompress(syns[1].payload.subarray(10))], [
      ["role", "body"],
      ["n", "7"],
    ]);
  } finally {
    inflate.close();
  }

  peer.reply(1);
  peer.reply(3);
  await body.replied;
  peer.deliver(dataFrame(1, 0, new TextEncoder().encode("note")));
  peer.deliver(dataFrame(1, FLAG_FIN, new Uint8Array(0)));
  peer.deliver(dataFrame(3, 0, new TextEncoder().encode("hello ")));
  peer.deliver(dataFrame(3, FLAG_FIN, new TextEncoder().encode("world")));
  assertEquals(events, ["control replied", "control got note", "control fin"]);
  assertEquals(await new Response(body.readable).text(), "hello world");

  await body.write(new TextEncoder().encode("ping"));
  body.finish();
  const sent = peer.dataOn(3);
  assertEquals(new TextDecoder().decode(sent[0].data), "ping");
  assertEquals(sent[1].flags & FLAG_FIN, FLAG_FIN);
  // Both streams are over both ways: the session forgets them.
  assertEquals(session.openStreams, 0);
  session.close(new Error("done"));
});

Deno.test("spdy session: a peer that does flow control holds writes to its windows, and one that sends past a stream's window gets that stream reset with FLOW_CONTROL_ERROR while the session goes on", async () => {
  const peer = scriptedPeer();
  const session = sessionOver(peer, { streamWindow: 32 * KiB });
  const failed: string[] = [];
  const [upload] = session.open([{ headers: [], delivery: "readable" }]);
  peer.reply(1);
  // A WINDOW_UPDATE says the peer does flow control (SPDY/3.1 §2.6.8).
  peer.deliver(controlFrame(WINDOW_UPDATE, 0, windowUpdatePayload(0, 1)));
  let written = false;
  const writing = upload.write(new Uint8Array(100 * KiB)).then(() => written = true);
  await ticks();
  const sentBytes = () => peer.dataOn(1).reduce((sum, f) => sum + f.data.length, 0);
  assertEquals(sentBytes(), 64 * KiB, "the default stream window (§2.6.8) bounds the write");
  assert(!written, "the write finished although the window is closed");
  peer.deliver(controlFrame(WINDOW_UPDATE, 0, windowUpdatePayload(1, 100 * KiB)));
  peer.deliver(controlFrame(WINDOW_UPDATE, 0, windowUpdatePayload(0, 100 * KiB)));
  await writing;
  assertEquals(sentBytes(), 100 * KiB);
  assert(peer.dataOn(1).every((f) => f.data.length <= 16 * KiB), "a frame over maxDataFrame");

  const [hostile] = session.open([{
    headers: [],
    delivery: "readable",
    handlers: { failed: (error) => failed.push(error.message) },
  }]);
  peer.reply(3);
  for (let i = 0; i < 3; i++) peer.deliver(dataFrame(3, 0, new Uint8Array(16 * KiB)));
  const reset = peer.controls(RST_STREAM).find((f) => payloadStreamId(f.payload) === 3);
  assert(reset, "no RST_STREAM for the stream sent past its window");
  assertEquals(payloadWord(reset.payload, 1), RST_FLOW_CONTROL_ERROR);
  assertEquals(failed, ["stream flow control"]);
  const error = await new Response(hostile.readable).text().then(() => undefined, (e) => e);
  assertMatch(String(error?.message), /stream flow control/);
  assertEquals(session.bufferedBytes, 0);
  assert(!session.closed, "the session closed");
  session.close(new Error("done"));
});

Deno.test("spdy session: without the peer's flow control, reading the link pauses while a readable holds its high-water mark and resumes as it is read, returning window", async () => {
  const peer = scriptedPeer();
  const session = sessionOver(peer, { streamWindow: 16 * KiB });
  const [download] = session.open([{ headers: [], delivery: "readable" }]);
  peer.reply(1);
  for (let i = 0; i < 5; i++) peer.deliver(dataFrame(1, 0, new Uint8Array(4 * KiB).fill(i)));
  assert(peer.state.paused, "reading was not paused at the high-water mark");
  assert(session.readingPaused, "the session does not report the pause");
  assertEquals(session.bufferedBytes, 20 * KiB);
  const reader = download.readable!.getReader();
  let read = 0;
  while (read < 20 * KiB) read += (await reader.read()).value!.length;
  await ticks();
  assert(!peer.state.paused, "reading did not resume once the readable was read");
  assertEquals(session.bufferedBytes, 0);
  const updates = peer.controls(WINDOW_UPDATE).filter((f) => payloadWord(f.payload, 0) === 1);
  assertEquals(updates.reduce((sum, f) => sum + payloadWord(f.payload, 1), 0), 20 * KiB);
  reader.releaseLock();
  session.close(new Error("done"));
});

Deno.test("spdy session: a peer's RST_STREAM fails that stream alone, our reset sends CANCEL, PINGs are echoed or odd, and the link's end fails every stream with the user's error", async () => {
  const peer = scriptedPeer();
  const ended: string[] = [];
  const session = sessionOver(peer, { ended: (error) => ended.push(error.message) });
  const failed: string[] = [];
  const [first, second, third] = session.open([0, 1, 2].map((i) => ({
    headers: [],
    delivery: "readable" as const,
    handlers: { failed: (error: Error) => failed.push(`${i}: ${error.message}`) },
  })));
  for (const id of [1, 3, 5]) peer.reply(id);

  peer.deliver(controlFrame(RST_STREAM, 0, rstStreamPayload(1, RST_CANCEL)));
  assertEquals(failed, ["0: peer reset"]);
  await first.write(new Uint8Array(1)).then(
    () => assert(false),
    (e) => assertEquals(e.message, "peer reset"),
  );

  second.reset();
  const cancel = peer.controls(RST_STREAM).find((f) => payloadStreamId(f.payload) === 3);
  assertEquals(cancel && payloadWord(cancel.payload, 1), RST_CANCEL);
  assertEquals(failed, ["0: peer reset"], "our own reset is not reported as a failure");

  peer.deliver(controlFrame(PING, 0, new Uint8Array([0, 0, 0, 2])));
  session.ping();
  assertEquals(peer.controls(PING).map((f) => payloadWord(f.payload, 0)), [2, 3]);

  peer.closeLink();
  assert(session.closed, "the session is open after its link ended");
  assertEquals(ended, ["closed"]);
  assertEquals(failed, ["0: peer reset", "2: closed"]);
  const error = await new Response(third.readable).text().then(() => undefined, (e) => e);
  assertEquals(error?.message, "closed");
});

Deno.test("spdy session: ping() resolves at its own echo, after the frames read before it; other ids, a hostile flood of echoes and a silent peer settle nothing", async () => {
  const peer = scriptedPeer();
  const session = sessionOver(peer, {});
  const [stream] = session.open([{ headers: [], delivery: "handler" }]);
  let replied = false;
  stream.replied.then(() => replied = true);
  const order: string[] = [];
  const echoOf = (id: number) => controlFrame(PING, 0, new Uint8Array([0, 0, 0, id]));

  session.ping().then(() => order.push(`echo, replied: ${replied}`));
  const [sent] = peer.controls(PING).map((f) => payloadWord(f.payload, 0));
  // A reply read before the echo (one connection, in order) is seen before the echo settles.
  peer.reply(1);
  peer.deliver(echoOf(sent));
  await ticks(1);
  assertEquals(order, ["echo, replied: true"]);

  // Echoes of ids never sent, or sent twice, settle nothing and break nothing.
  session.ping().then(() => order.push("second"));
  for (const id of [sent, sent + 4, 7, 255]) peer.deliver(echoOf(id));
  await ticks(1);
  assertEquals(order, ["echo, replied: true"]);
  peer.deliver(echoOf(sent + 2));
  await ticks(1);
  assertEquals(order.at(-1), "second");

  // A peer that never echoes: at most 64 PINGs are awaited; the oldest stop being awaited.
  const settled: number[] = [];
  for (let i = 0; i < 100; i++) session.ping().then(() => settled.push(i));
  const ids = peer.controls(PING).map((f) => payloadWord(f.payload, 0)).slice(-100);
  for (const id of ids) peer.deliver(echoOf(id));
  await ticks(1);
  assertEquals(settled, Array.from({ length: 64 }, (_, i) => 36 + i));
  assert(!session.closed, "the session lives on");
});

Deno.test("spdy session: a frame that arrives in pieces reaches a handler whole (an error stream's text is judged as one message), and a readable gets the pieces in order", async () => {
  const peer = scriptedPeer();
  const session = sessionOver(peer, {});
  const texts: string[] = [];
  const [control, body] = session.open([
    {
      headers: [],
      delivery: "handler",
      receiveOnly: true,
      handlers: { received: (bytes) => texts.push(new TextDecoder().decode(bytes)) },
    },
    { headers: [], delivery: "readable" },
  ]);
  peer.reply(control.id);
  peer.reply(body.id);
  const text = dataFrame(control.id, FLAG_FIN, new TextEncoder().encode("connection refused"));
  // Cut inside the header, then inside the text: the link delivers chunks as TLS records come.
  for (const [from, to] of [[0, 5], [5, 20], [20, text.length]]) peer.deliver(text.slice(from, to));
  assertEquals(texts, ["connection refused"]);
  const bulk = new Uint8Array(40 * KiB).map((_, i) => i & 0xff);
  const frame = dataFrame(body.id, FLAG_FIN, bulk);
  for (const [from, to] of [[0, 16 * KiB], [16 * KiB, 32 * KiB], [32 * KiB, frame.length]]) {
    peer.deliver(frame.slice(from, to));
  }
  const chunks: Uint8Array[] = [];
  for await (const chunk of body.readable!) chunks.push(chunk);
  assertEquals(chunks.length, 3, "the readable gets each piece as it came");
  assertEquals(new Uint8Array(chunks.flatMap((c) => [...c])), bulk);
  await ticks();
});

Deno.test("spdy session: a peer that floods PINGs while reading nothing gets no echoes past the send high-water mark", () => {
  const peer = scriptedPeer();
  sessionOver(peer, { sendHighWater: 64 * KiB });
  const ping = (id: number) => controlFrame(PING, 0, new Uint8Array([0, 0, id >> 8, id & 0xff]));
  peer.deliver(ping(2));
  assertEquals(peer.controls(PING).length, 1, "echoed while the link drains");
  peer.state.unsent = 64 * KiB + 1; // the peer stopped reading: our writes wait
  for (let id = 4; id < 20_000; id += 2) peer.deliver(ping(id));
  assertEquals(peer.controls(PING).length, 1, "no echo queued behind a link that does not drain");
  peer.state.unsent = 0;
  peer.deliver(ping(20_000));
  assertEquals(peer.controls(PING).length, 2, "echoed again once it drains");
});

Deno.test("spdy session: a hostile peer's frames — valid ones mutated, cut anywhere — never throw out of the link's byte handler", async () => {
  const replies = new HeaderBlockEncoder();
  for (let seed = 1; seed <= 300; seed++) {
    const random = seededRandom(seed);
    const peer = scriptedPeer();
    const session = sessionOver(peer, { streamWindow: 16 * KiB, sessionWindow: 64 * KiB });
    const streams = session.open([
      { headers: [["n", "1"]], delivery: "readable" },
      { headers: [["n", "2"]], delivery: "handler", handlers: { received: () => {} } },
    ]);
    for (const stream of streams) stream.readable?.getReader().read().catch(() => {});
    const word = (id: number) => Uint8Array.of(id >>> 24, id >>> 16, id >>> 8, id);
    const frames = [
      controlFrame(SYN_REPLY, 0, synReplyPayload(1, replies.encode([["a", "b"]]))),
      controlFrame(SYN_REPLY, 0, synReplyPayload(3, replies.encode([]))),
      dataFrame(1, 0, new Uint8Array(1 + random(40_000)).fill(7)),
      dataFrame(3, random(2), new Uint8Array(random(300))),
      controlFrame(PING, 0, word(random(10))),
      controlFrame(WINDOW_UPDATE, 0, windowUpdatePayload(random(6), random(0x7fffffff))),
      controlFrame(RST_STREAM, 0, rstStreamPayload(random(6), random(12))),
      controlFrame(4, 0, Uint8Array.of(0, 0, 0, 1, 0, 0, 0, 7, ...word(random(0x7fffffff)))),
      controlFrame(7, 0, word(random(6))), // GOAWAY
      controlFrame(SYN_STREAM, 0, new Uint8Array(10 + random(40))), // the server may not open
      dataFrame(random(9), FLAG_FIN, new Uint8Array(random(100))),
    ];
    const wire = concatBytes(Array.from({ length: 12 }, () => frames[random(frames.length)]));
    for (let i = 0, flips = random(6); i < flips; i++) wire[random(wire.length)] ^= 1 << random(8);
    try {
      for (let at = 0; at < wire.length;) {
        const n = 1 + random(4096);
        peer.deliver(wire.slice(at, at + n));
        at += n;
      }
      peer.closeLink();
    } catch (error) {
      throw new Error(`seed ${seed}: the byte handler threw ${error}`);
    }
    session.close(new Error("done"));
    await ticks(1);
  }
});

Deno.test("spdy session: an app that cancels its readable while the peer still sends gets the stream reset; later data and FIN for it raise nothing", async () => {
  const peer = scriptedPeer();
  const session = sessionOver(peer, {});
  const [stream] = session.open([{ headers: [], delivery: "readable" }]);
  peer.reply(1);
  peer.deliver(dataFrame(1, 0, new Uint8Array(100).fill(1)));
  const reader = stream.readable!.getReader();
  assertEquals((await reader.read()).value?.length, 100);
  await reader.cancel();
  const reset = peer.controls(RST_STREAM).find((f) => payloadStreamId(f.payload) === 1);
  assert(reset, "the stream is reset once its reader let go");
  peer.deliver(dataFrame(1, 0, new Uint8Array(100).fill(2)));
  peer.deliver(dataFrame(1, FLAG_FIN, new Uint8Array(10)));
  peer.deliver(controlFrame(RST_STREAM, 0, rstStreamPayload(1, RST_CANCEL)));
  await ticks();
  assert(!session.closed, "the session goes on");
  session.close(new Error("done"));
});
