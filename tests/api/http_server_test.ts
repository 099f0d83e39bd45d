/**
 * The API's HTTP/1.1 server (core/api/http_server.ts) on the wire: one request per connection,
 * a finite body with its length, HEAD without a body, a stream until the client closes, and
 * clear refusals for heads that are malformed, too long or too slow.
 */
import { assert, assertEquals, assertMatch } from "../assert.ts";
import { API_LIMITS, HttpServer } from "../../core/api/http_server.ts";
import { startApiServer } from "../../core/api/server.ts";
import { TunnelState } from "../../core/api/state.ts";
import { Metrics } from "../../core/api/metrics.ts";
import type { ListenerLimits } from "../../core/guarded_listener.ts";
import { concatBytes } from "../../core/stream/concat_bytes.ts";
import { seededRandom } from "../lab/pseudo_random.ts";

const encoder = new TextEncoder();

/** Sends `request` (raw bytes) and reads until the server closes; returns what came back. */
async function exchange(port: number, request: string | Uint8Array): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(typeof request === "string" ? encoder.encode(request) : request);
  await conn.closeWrite(); // nothing more comes: a head cut short ends at once, not at a deadline
  const chunks: Uint8Array[] = [];
  const buffer = new Uint8Array(64 * 1024);
  try {
    while (true) {
      const n = await conn.read(buffer);
      if (n === null) break;
      chunks.push(buffer.slice(0, n));
    }
  } catch {
    // reset after the answer
  } finally {
    conn.close();
  }
  return new TextDecoder().decode(concatBytes(chunks));
}

function serve(handler: (request: Request) => Response, limits?: ListenerLimits) {
  const server = new HttpServer("127.0.0.1", 0, handler, limits);
  return Object.assign(server, { [Symbol.asyncDispose]: () => server.close() });
}

const echoPath = (request: Request) =>
  new Response(`${request.method} ${new URL(request.url).pathname}`, {
    headers: { "content-type": "text/plain", "x-host": request.headers.get("host") ?? "" },
  });

Deno.test("api http server: a GET is answered with its length and the connection closed", async () => {
  await using server = serve(echoPath);
  const answer = await exchange(
    server.addr.port,
    "GET /vips?x=1 HTTP/1.1\r\nHost: localhost:1\r\nAccept: */*\r\n\r\n",
  );
  assertMatch(answer, /^HTTP\/1\.1 200 OK\r\n/);
  assertMatch(answer, /\r\ncontent-length: 9\r\n/);
  assertMatch(answer, /\r\nconnection: close\r\n/);
  assertMatch(answer, /\r\nx-host: localhost:1\r\n/, "the Host header reaches the handler");
  assert(answer.endsWith("\r\n\r\nGET /vips"), answer);
});

Deno.test("api http server: HEAD gets the head with the length and no body", async () => {
  await using server = serve(echoPath);
  const answer = await exchange(server.addr.port, "HEAD / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  assertMatch(answer, /^HTTP\/1\.1 200 OK\r\n/);
  assertMatch(answer, /\r\ncontent-length: 6\r\n/);
  assert(answer.endsWith("\r\n\r\n"), "no body after the head");
});

Deno.test("api http server: malformed heads get 400, a 20 KiB head 431, and none reaches the handler", async () => {
  let called = 0;
  await using server = serve((request) => {
    called++;
    return echoPath(request);
  });
  for (
    const bad of [
      "GET /\r\n\r\n", // no version
      "GET / HTTP/2.0\r\n\r\n",
      "GET  / HTTP/1.1\r\n\r\n", // two spaces
      "GET / HTTP/1.1\r\nno colon here\r\n\r\n",
      "GET / HTTP/1.1\r\nHost : x\r\n\r\n", // space before the colon (RFC 9112 §5.1)
      "GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", // obsolete line folding
      "GET http://evil/ HTTP/1.1\r\nHost: x\r\n\r\n", // not origin form
      "G(T / HTTP/1.1\r\n\r\n", // not a token
      "GET / HTTP/1.1\r\nX: \u0001\r\n\r\n", // a control character in a value
    ]
  ) {
    assertMatch(await exchange(server.addr.port, bad), /^HTTP\/1\.1 400 /, JSON.stringify(bad));
  }
  const long = `GET / HTTP/1.1\r\nX: ${"a".repeat(20 * 1024)}\r\n\r\n`;
  assertMatch(await exchange(server.addr.port, long), /^HTTP\/1\.1 431 /);
  assertEquals(called, 0);
});

Deno.test("api http server: a client that sends no head is closed at the deadline; past the cap, at once", async () => {
  await using server = serve(echoPath, {
    maxConnections: 3,
    maxPerSource: 3,
    maxHandshakesPerSource: 3,
    handshakeMs: 300,
  });
  const silent = await Promise.all(
    Array.from(
      { length: 5 },
      () => Deno.connect({ hostname: "127.0.0.1", port: server.addr.port }),
    ),
  );
  const started = Date.now();
  const ends = await Promise.all(
    silent.map((conn) => conn.read(new Uint8Array(1)).catch(() => null).then(() => Date.now())),
  );
  for (const conn of silent) conn.close();
  assertEquals(server.counts().refused, 2);
  assertEquals(server.counts().timedOut, 3);
  assert(ends.every((end) => end - started < 2_000), "none was kept past its deadline");
  // Nothing left held: a well-formed request is answered.
  assertMatch(await exchange(server.addr.port, "GET / HTTP/1.1\r\n\r\n"), /^HTTP\/1\.1 200 /);
});

Deno.test("api http server: an event stream flows until the client closes, then is cancelled", async () => {
  const cancelled = Promise.withResolvers<void>();
  await using server = serve(() => {
    let timer: ReturnType<typeof setInterval>;
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        timer = setInterval(() => controller.enqueue(encoder.encode("data: x\n\n")), 10);
      },
      cancel() {
        clearInterval(timer);
        cancelled.resolve();
      },
    });
    return new Response(body, { headers: { "content-type": "text/event-stream" } });
  });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
  await conn.write(encoder.encode("GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
  let text = "";
  const buffer = new Uint8Array(4096);
  while ((text.match(/data: x/g) ?? []).length < 3) {
    const n = await conn.read(buffer);
    if (n === null) break;
    text += new TextDecoder().decode(buffer.subarray(0, n));
  }
  assertMatch(text, /^HTTP\/1\.1 200 OK\r\n/);
  assert(!/content-length/i.test(text), "a stream has no length: the close ends it");
  conn.close();
  await cancelled.promise; // would hang (test timeout) if the stream outlived its client
  for (let i = 0; i < 100 && server.counts().open > 0; i++) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  assertEquals(server.counts().open, 0, "the connection is released with its stream");
});

Deno.test("api http server: the framing is the server's — a handler's own length or connection fields are not sent twice", async () => {
  await using server = serve(() =>
    new Response("four", { headers: { "content-length": "999", connection: "keep-alive" } })
  );
  const answer = await exchange(server.addr.port, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  assertEquals(answer.match(/\r\ncontent-length: /g)?.length, 1);
  assertMatch(answer, /\r\ncontent-length: 4\r\n/);
  assertEquals(answer.match(/\r\nconnection: /g)?.length, 1);
  assertMatch(answer, /\r\nconnection: close\r\n/);
});

Deno.test("api server: a port in use is an error naming the address and the flag", async () => {
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const error = await (async () =>
      await startApiServer({
        port: (taken.addr as Deno.NetAddr).port,
        state: new TunnelState({}),
        metrics: new Metrics({ vipsByType: () => ({}) }),
        health: () => ({ status: "ok", tun: "up", dns_mode: "disabled", cluster: "synced" }),
      }))().then(() => undefined, (e) => e as Error);
    assertMatch(
      error?.message ?? "",
      /^the HTTP API cannot listen on 127\.0\.0\.1:\d+: .* pick another with --http PORT$/,
    );
  } finally {
    taken.close();
  }
});

Deno.test("api http server: 1,500 mutated and random request heads each get an answer or a close, and the server serves on", async () => {
  const random = seededRandom(7);
  await using server = serve(echoPath, { ...API_LIMITS, handshakeMs: 500 });
  const valid = encoder.encode(
    "GET /vips?x=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\nLast-Event-ID: 3\r\n\r\n",
  );
  for (let i = 0; i < 1500; i++) {
    const bytes = i % 3 === 0
      ? crypto.getRandomValues(new Uint8Array(1 + random(300)))
      : valid.slice(0, valid.length - random(4));
    for (let flips = random(4); flips > 0; flips--) bytes[random(bytes.length)] = random(256);
    const answer = await exchange(server.addr.port, bytes);
    assert(
      answer === "" || /^HTTP\/1\.1 \d{3} /.test(answer),
      `answer ${i}: ${answer.slice(0, 60)}`,
    );
  }
  assertMatch(await exchange(server.addr.port, valid), /^HTTP\/1\.1 200 /);
  assertEquals(server.counts().open, 0);
});
