/** The early-handover replay (core/stream/replaying_duplex.ts) against scripted far ends. */
import { assert, assertEquals } from "../assert.ts";
import { replayingDuplex } from "../../core/stream/replaying_duplex.ts";
import { DialError, type Duplex } from "../../mod.ts";
import { concatBytes } from "../../core/stream/concat_bytes.ts";

/** A scripted far end: records what it receives; the test decides its verdict and answer. */
function farEnd() {
  const received: Uint8Array[] = [];
  let halfClosed = false;
  let readable!: ReadableStreamDefaultController<Uint8Array>;
  const verdict = Promise.withResolvers<void>();
  verdict.promise.catch(() => {});
  let aborted = false;
  const duplex: Duplex = {
    readable: new ReadableStream({ start: (c) => void (readable = c) }),
    writable: new WritableStream({
      write: (chunk) => void received.push(chunk.slice()),
      close: () => void (halfClosed = true),
    }),
    abort: () => void (aborted = true),
    accepted: verdict.promise,
  };
  return {
    duplex,
    text: () => new TextDecoder().decode(concatBytes(received)),
    halfClosed: () => halfClosed,
    aborted: () => aborted,
    accept: () => verdict.resolve(),
    /** A refusal, as a port-forward reports it: the verdict rejects and the readable errors. */
    refuse() {
      const error = new DialError("refused", "connection refused");
      verdict.reject(error);
      readable.error(error);
    },
    send: (text: string) => readable.enqueue(new TextEncoder().encode(text)),
    end: () => readable.close(),
  };
}

const bytes = (text: string) => new TextEncoder().encode(text);
const tick = () => new Promise((r) => setTimeout(r, 5));

Deno.test("replay: a refused first connection replays the request and half-close on the next", async () => {
  const first = farEnd();
  const second = farEnd();
  const duplex = replayingDuplex(first.duplex, () => Promise.resolve(second.duplex));
  const writer = duplex.writable.getWriter();
  await writer.write(bytes("GET / HTTP/1.0\r\n"));
  await writer.write(bytes("\r\n"));
  await writer.close();
  first.refuse();
  await tick();
  assert(first.aborted(), "the refused connection is released");
  assertEquals(second.text(), "GET / HTTP/1.0\r\n\r\n");
  assert(second.halfClosed(), "the half-close is replayed too");
  second.accept();
  second.send("HTTP/1.0 200 OK\r\n\r\nhi");
  second.end();
  assertEquals(await new Response(duplex.readable).text(), "HTTP/1.0 200 OK\r\n\r\nhi");
});

Deno.test("replay: bytes written after the replay go to the new connection once", async () => {
  const first = farEnd();
  const second = farEnd();
  const duplex = replayingDuplex(first.duplex, () => Promise.resolve(second.duplex));
  const writer = duplex.writable.getWriter();
  await writer.write(bytes("a"));
  first.refuse();
  const later = writer.write(bytes("b")); // waits for the replay
  await tick();
  second.accept();
  await later;
  await writer.write(bytes("c"));
  assertEquals(second.text(), "abc", "each byte exactly once, in order");
});

Deno.test("replay: an accepted connection passes bytes through and keeps nothing", async () => {
  const first = farEnd();
  let redials = 0;
  const duplex = replayingDuplex(first.duplex, () => {
    redials++;
    return Promise.resolve(farEnd().duplex);
  });
  const writer = duplex.writable.getWriter();
  await writer.write(bytes("ping"));
  first.accept();
  first.send("pong");
  const reader = duplex.readable.getReader();
  assertEquals(new TextDecoder().decode((await reader.read()).value), "pong");
  assertEquals(first.text(), "ping");
  assertEquals(redials, 0);
});

Deno.test("replay: writes beyond the limit wait for the verdict instead of growing the buffer", async () => {
  const first = farEnd();
  const duplex = replayingDuplex(first.duplex, () => Promise.resolve(farEnd().duplex), 8);
  const writer = duplex.writable.getWriter();
  await writer.write(bytes("12345678"));
  let done = false;
  const blocked = writer.write(bytes("9")).then(() => done = true);
  await tick();
  assertEquals(done, false, "the ninth byte waits");
  first.accept();
  await blocked;
  assertEquals(first.text(), "123456789");
});

Deno.test("replay: without another candidate a refusal reaches the app as an error", async () => {
  const first = farEnd();
  const duplex = replayingDuplex(first.duplex, undefined);
  first.refuse();
  const error = await duplex.readable.getReader().read().then(() => undefined, (e) => e);
  assert(error instanceof DialError && error.reason === "refused");
});

Deno.test("replay: no replay once the app has received bytes from the first connection", async () => {
  const first = farEnd();
  let redials = 0;
  const duplex = replayingDuplex(first.duplex, () => {
    redials++;
    return Promise.resolve(farEnd().duplex);
  });
  const reader = duplex.readable.getReader();
  first.send("banner");
  await reader.read();
  first.refuse();
  const error = await reader.read().then(() => undefined, (e) => e);
  assert(error instanceof DialError);
  assertEquals(redials, 0);
});

Deno.test("replay: every candidate refusing ends with the last refusal", async () => {
  const first = farEnd();
  const second = farEnd();
  let calls = 0;
  const duplex = replayingDuplex(first.duplex, () => {
    calls++;
    return calls === 1
      ? Promise.resolve(second.duplex)
      : Promise.reject(new DialError("refused", "no candidates left"));
  });
  const reader = duplex.readable.getReader();
  first.refuse();
  await tick();
  second.refuse();
  const error = await reader.read().then(() => undefined, (e) => e);
  assert(error instanceof DialError && error.reason === "refused", String(error));
  assertEquals(calls, 2);
});
