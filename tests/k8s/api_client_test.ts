/**
 * ApiClient (core/k8s/api_client.ts) against a fake API server on loopback: GET of JSON with the
 * kubeconfig's credentials, refusals as ApiStatusError (a 401 forgets a cached plugin
 * credential), large bodies, a server that never answers, watches (events across chunk
 * boundaries, a clean end, a broken line, abort, a refused watch) and HTTPS with the
 * kubeconfig's CA.
 */
import { assert, assertEquals, assertMatch, assertRejects } from "../assert.ts";
import { ApiClient, ApiStatusError, type WatchEvent } from "../../core/k8s/api_client.ts";
import { ApiAccess } from "../../core/k8s/api_access.ts";
import { ExecCredentials, type RunCommand } from "../../core/k8s/exec_credential.ts";
import { generateSimTls } from "../../sim/tls.ts";
import { tokenKubeconfig } from "../kubeconfig/token_kubeconfig.ts";

const TOKEN = "fake-token-123";
const OPTIONS = { handshakeTimeoutMs: 5_000 };

/** A kubeconfig for `server` with a bearer token, and the CA when given. */
function kubeconfig(server: string, caPem?: string): string {
  return tokenKubeconfig(server, { token: TOKEN, caPem });
}

/**
 * A fake API server; `await using` shuts it down. `handler` gets a signal that aborts first, so
 * streams it holds open end (a test that failed to close one would otherwise hang on shutdown).
 */
function fakeApi(
  handler: (request: Request, stopping: AbortSignal) => Response | Promise<Response>,
  tls?: { cert: string; key: string },
) {
  const stopping = new AbortController();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {}, ...tls },
    (request) => handler(request, stopping.signal),
  );
  const url = `${tls ? "https" : "http"}://127.0.0.1:${server.addr.port}`;
  return {
    url,
    port: server.addr.port,
    async [Symbol.asyncDispose]() {
      stopping.abort();
      await server.shutdown();
    },
  };
}

function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json" },
  });
}

/**
 * A streamed response: `parts` in order, `pauseMs` apart. It ends after the last part unless
 * `open` is given: then it ends when the client closes the connection (`closed` hears of it) or
 * when `open` aborts (the server stops). The cancelled body is how these tests see the client
 * close a connection: Deno cancels it when the connection goes away before the body ended.
 * (`request.signal` cannot tell: Deno 2.9 still aborts it after a response delivered whole, and
 * prints a notice of that legacy behaviour.)
 */
function streamed(
  parts: (string | Uint8Array)[],
  options: { pauseMs?: number; open?: AbortSignal; closed?: (reason: unknown) => void } = {},
): Response {
  const encoder = new TextEncoder();
  let cancelled = false;
  const body = new ReadableStream<Uint8Array>({
    async start(controller) {
      for (const part of parts) {
        if (cancelled) return;
        controller.enqueue(typeof part === "string" ? encoder.encode(part) : part);
        await delay(options.pauseMs ?? 30);
      }
      if (options.open && !options.open.aborted) {
        await new Promise((resolve) => options.open!.addEventListener("abort", resolve));
      }
      if (!cancelled) controller.close();
    },
    cancel(reason) {
      cancelled = true;
      options.closed?.(reason);
    },
  });
  return new Response(body, { headers: { "content-type": "application/json" } });
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** `promise`, or a failure naming `what` after `ms`: a test that would hang fails instead. */
async function within<T>(promise: Promise<T>, what: string, ms = 3_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** A promise and its resolver. */
function later<T = void>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => resolve = r);
  return { promise, resolve };
}

/** Collects a watch's events and its single end. */
function watchRecorder() {
  const events: WatchEvent[] = [];
  const ends: (Error | undefined)[] = [];
  const ended = later<Error | undefined>();
  const first = later();
  return {
    events,
    ends,
    ended: ended.promise,
    first: first.promise,
    onEvent: (event: WatchEvent) => {
      events.push(event);
      first.resolve();
    },
    onEnded: (error?: Error) => {
      ends.push(error);
      ended.resolve(error);
    },
  };
}

const line = (type: string, name: string) =>
  JSON.stringify({ type, object: { metadata: { name, resourceVersion: name } } }) + "\n";

Deno.test("api client: get parses JSON, sends the bearer token and Accept, keeps the query", async () => {
  const seen: { path: string; authorization: string | null; accept: string | null }[] = [];
  await using server = fakeApi((request) => {
    const url = new URL(request.url);
    seen.push({
      path: url.pathname + url.search,
      authorization: request.headers.get("authorization"),
      accept: request.headers.get("accept"),
    });
    return json({ kind: "NamespaceList", items: [{ metadata: { name: "default" } }] });
  });
  const client = new ApiClient(ApiAccess.fromText(kubeconfig(server.url)), OPTIONS);
  const list = await client.get<{ kind: string; items: { metadata: { name: string } }[] }>(
    "/api/v1/namespaces?limit=1&labelSelector=a%3Db",
  );
  assertEquals(list, { kind: "NamespaceList", items: [{ metadata: { name: "default" } }] });
  assertEquals(seen, [{
    path: "/api/v1/namespaces?limit=1&labelSelector=a%3Db",
    authorization: `Bearer ${TOKEN}`,
    accept: "application/json",
  }]);
});

Deno.test("api client: a server URL with a path is the prefix of every request's path", async () => {
  const paths: string[] = [];
  await using server = fakeApi((request) => {
    const url = new URL(request.url);
    paths.push(url.pathname + url.search);
    return json({ kind: "NamespaceList", items: [] });
  });
  // As Rancher's cluster proxy is addressed; the trailing slash is not doubled.
  const prefixed = `${server.url}/k8s/clusters/c-1/`;
  const client = new ApiClient(ApiAccess.fromText(kubeconfig(prefixed)), OPTIONS);
  await client.get("/api/v1/namespaces?limit=1");
  assertEquals(paths, ["/k8s/clusters/c-1/api/v1/namespaces?limit=1"]);
});

Deno.test("api client: a refusal is an ApiStatusError with the server's Status message", async () => {
  await using server = fakeApi((request) => {
    if (new URL(request.url).pathname === "/api/v1/pods") {
      return json({
        kind: "Status",
        apiVersion: "v1",
        status: "Failure",
        message: 'pods is forbidden: User "fake" cannot list resource "pods" at the cluster scope',
        reason: "Forbidden",
        code: 403,
      }, 403);
    }
    return new Response("<html>upstream exploded</html>", { status: 500 });
  });
  const client = new ApiClient(ApiAccess.fromText(kubeconfig(server.url)), OPTIONS);
  const forbidden = await client.get("/api/v1/pods").then(
    () => undefined,
    (error: unknown) => error,
  );
  assert(forbidden instanceof ApiStatusError, `not an ApiStatusError: ${forbidden}`);
  assertEquals(forbidden.status, 403);
  assertMatch(forbidden.message, /^HTTP 403: pods is forbidden: User "fake" cannot list/);

  const broken = await client.get("/api/v1/services").then(
    () => undefined,
    (error: unknown) => error,
  );
  assert(broken instanceof ApiStatusError, `not an ApiStatusError: ${broken}`);
  assertEquals(broken.status, 500);
  assertEquals(broken.message, "HTTP 500");
});

Deno.test("api client: a 401 makes the next request run the credential plugin again", async () => {
  let runs = 0;
  const run: RunCommand = () => {
    runs++;
    return Promise.resolve({
      code: 0,
      stdout: JSON.stringify({
        apiVersion: "client.authentication.k8s.io/v1",
        kind: "ExecCredential",
        status: { token: `plugin-token-${runs}` },
      }),
      stderr: "",
    });
  };
  const tokens: (string | null)[] = [];
  let refuse = false;
  await using server = fakeApi((request) => {
    tokens.push(request.headers.get("authorization"));
    if (refuse) {
      refuse = false;
      return json({ kind: "Status", message: "Unauthorized", code: 401 }, 401);
    }
    return json({ kind: "NamespaceList", items: [] });
  });
  const access = new ApiAccess(
    {
      context: "fake",
      cluster: { name: "fake", server: server.url },
      userName: "plugin-user",
      user: {
        exec: {
          command: "fake-credential-plugin",
          apiVersion: "client.authentication.k8s.io/v1",
          interactiveMode: "Never",
        },
      },
    },
    new ExecCredentials({ run }),
  );
  const client = new ApiClient(access, OPTIONS);
  await client.get("/api/v1/namespaces");
  await client.get("/api/v1/namespaces");
  assertEquals(runs, 1, "a credential without expiry is kept");

  refuse = true;
  const error = await client.get("/api/v1/namespaces").then(() => undefined, (e: unknown) => e);
  assert(error instanceof ApiStatusError, `not an ApiStatusError: ${error}`);
  assertEquals(error.status, 401);
  assertEquals(error.message, "HTTP 401: Unauthorized");
  assertEquals(runs, 1);

  await client.get("/api/v1/namespaces");
  assertEquals(runs, 2, "the refused credential was forgotten");
  assertEquals(tokens, [
    "Bearer plugin-token-1",
    "Bearer plugin-token-1",
    "Bearer plugin-token-1",
    "Bearer plugin-token-2",
  ]);
});

Deno.test("api client: a large list arrives whole", async () => {
  const items = Array.from({ length: 20_000 }, (_, i) => ({
    metadata: { name: `pod-${i}`, namespace: "default", uid: crypto.randomUUID() },
    status: { podIP: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, note: "x".repeat(60) },
  }));
  const body = JSON.stringify({ kind: "PodList", items });
  assert(body.length > 3_000_000, `the body is only ${body.length} bytes`);
  await using server = fakeApi(() => new Response(body));
  const client = new ApiClient(ApiAccess.fromText(kubeconfig(server.url)), OPTIONS);
  const list = await client.get<{ items: typeof items }>("/api/v1/pods");
  assertEquals(list.items.length, items.length);
  assertEquals(list.items.at(-1), items.at(-1));
  assertEquals(JSON.stringify(list), body);
});

Deno.test("api client: an answer longer than the limit fails the GET, saying so, and closes the connection instead of reading on", async () => {
  const closed = later<unknown>();
  const megabyte = new Uint8Array(1024 * 1024).fill(0x20);
  await using server = fakeApi(() =>
    streamed(['{"items":[', ...Array(64).fill(megabyte), "]}"], {
      pauseMs: 1,
      closed: closed.resolve,
    })
  );
  const client = new ApiClient(ApiAccess.fromText(kubeconfig(server.url)), {
    ...OPTIONS,
    maxAnswerBytes: 4 * 1024 * 1024,
  });
  await assertRejects(
    () => client.get("/api/v1/pods?limit=500"),
    /the answer to GET \/api\/v1\/pods\?limit=500 is longer than 4 MiB/,
  );
  await within(closed.promise, "the server saw the connection close", 10_000);
});

Deno.test("api client: a server that accepts but never answers fails within handshakeTimeoutMs", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of listener) accepted.push(conn); // read nothing, answer nothing
  })();
  try {
    const server = `http://127.0.0.1:${listener.addr.port}`;
    const client = new ApiClient(ApiAccess.fromText(kubeconfig(server)), {
      handshakeTimeoutMs: 300,
    });
    const started = performance.now();
    const outcome = await within(
      client.get("/api/v1/namespaces").then(() => "answered", (error: Error) => error),
      "the GET settled",
    );
    const elapsed = performance.now() - started;
    assert(outcome instanceof Error, `expected a rejection, got ${outcome}`);
    assertMatch(outcome.message, /no answer within 0\.3 s/);
    assert(elapsed >= 250 && elapsed < 2_000, `rejected after ${elapsed} ms`);
    assertEquals(accepted.length, 1);
  } finally {
    listener.close();
    await accepting;
    for (const conn of accepted) conn.close();
  }
});

Deno.test("api client: a GET whose body stalls fails within handshakeTimeoutMs, saying so", async () => {
  const closed = later<unknown>();
  await using server = fakeApi((_, stopping) =>
    streamed(['{"kind":"PodList","items":['], { open: stopping, closed: closed.resolve })
  );
  const client = new ApiClient(ApiAccess.fromText(kubeconfig(server.url)), {
    handshakeTimeoutMs: 300,
  });
  const started = performance.now();
  const outcome = await within(
    client.get("/api/v1/pods").then(() => "answered", (error: Error) => error),
    "the GET settled",
  );
  const elapsed = performance.now() - started;
  assert(outcome instanceof Error, `expected a rejection, got ${outcome}`);
  assertEquals(outcome.message, "the answer did not end within 0.3 s");
  assert(elapsed >= 250 && elapsed < 2_000, `rejected after ${elapsed} ms`);
  await within(closed.promise, "the connection was closed");
});

Deno.test("api client: watch delivers events in order, across chunks, and ends once", async () => {
  const first = line("ADDED", "a");
  const second = line("MODIFIED", "b");
  // A line whose split falls inside a two-byte character.
  const third = new TextEncoder().encode(
    JSON.stringify({ type: "MODIFIED", object: { metadata: { name: "café" } } }) + "\n",
  );
  const split = third.indexOf(0xc3) + 1;
  let cancelled = false;
  await using server = fakeApi(() =>
    streamed([
      first,
      "\n", // blank lines are no events
      second.slice(0, 20), // half a line…
      second.slice(20) + "\n  \n", // …and the rest
      third.subarray(0, split),
      third.subarray(split),
      line("BOOKMARK", "c") + line("DELETED", "d"),
    ], { closed: () => cancelled = true })
  );
  const client = new ApiClient(ApiAccess.fromText(kubeconfig(server.url)), OPTIONS);
  const watch = watchRecorder();
  await client.watch("/api/v1/pods?watch=1", watch.onEvent, watch.onEnded);
  assertEquals(await within(watch.ended, "the watch ended"), undefined);
  assertEquals(watch.events.map((e) => [e.type, e.object.metadata.name]), [
    ["ADDED", "a"],
    ["MODIFIED", "b"],
    ["MODIFIED", "café"],
    ["BOOKMARK", "c"],
    ["DELETED", "d"],
  ]);
  await delay(50);
  assertEquals(watch.ends, [undefined], "ended once");
  assert(!cancelled, "the server delivered its whole body");
});

Deno.test("api client: a watch stays open while the server is quiet longer than the timeout", async () => {
  await using server = fakeApi(() =>
    streamed([line("ADDED", "a"), line("ADDED", "b")], { pauseMs: 600 })
  );
  const client = new ApiClient(ApiAccess.fromText(kubeconfig(server.url)), {
    handshakeTimeoutMs: 300,
  });
  const watch = watchRecorder();
  await client.watch("/api/v1/pods?watch=1", watch.onEvent, watch.onEnded);
  assertEquals(await within(watch.ended, "the watch ended"), undefined);
  assertEquals(watch.events.map((e) => e.object.metadata.name), ["a", "b"]);
});

Deno.test("api client: a watch line that is not JSON ends the watch with an error and closes it", async () => {
  const closed = later<unknown>();
  await using server = fakeApi((_, stopping) =>
    streamed([line("ADDED", "a"), "this is not json\n", line("ADDED", "b")], {
      open: stopping,
      closed: closed.resolve,
    })
  );
  const client = new ApiClient(ApiAccess.fromText(kubeconfig(server.url)), OPTIONS);
  const watch = watchRecorder();
  await client.watch("/api/v1/pods?watch=1", watch.onEvent, watch.onEnded);
  const error = await within(watch.ended, "the watch ended");
  assert(error instanceof Error);
  assertMatch(error.message, /the watch of \/api\/v1\/pods\?watch=1 sent a line that is not JSON/);
  assertEquals(watch.events.map((e) => e.object.metadata.name), ["a"]);
  await within(closed.promise, "the server saw the connection close");
  await delay(50);
  assertEquals(watch.ends.length, 1, "ended once");
});

Deno.test("api client: a watch whose connection drops ends with an error", async () => {
  // A chunked answer cut off before its last chunk: no clean end.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving = (async () => {
    const conn = await listener.accept();
    try {
      await conn.read(new Uint8Array(16_384));
      const event = line("ADDED", "a");
      await conn.write(new TextEncoder().encode(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n" +
          `${event.length.toString(16)}\r\n${event}\r\n`,
      ));
      await delay(50);
    } finally {
      conn.close();
    }
  })();
  try {
    const server = `http://127.0.0.1:${listener.addr.port}`;
    const client = new ApiClient(ApiAccess.fromText(kubeconfig(server)), OPTIONS);
    const watch = watchRecorder();
    await client.watch("/api/v1/pods?watch=1", watch.onEvent, watch.onEnded);
    assert(
      (await within(watch.ended, "the watch ended")) instanceof Error,
      "a dropped connection is no clean end",
    );
    assertEquals(watch.events.map((e) => e.object.metadata.name), ["a"]);
    await delay(50);
    assertEquals(watch.ends.length, 1, "ended once");
  } finally {
    await serving;
    listener.close();
  }
});

Deno.test("api client: abort ends the watch once and closes its connection", async () => {
  const closed = later<unknown>();
  await using server = fakeApi((_, stopping) =>
    streamed([line("ADDED", "a")], { open: stopping, closed: closed.resolve })
  );
  const client = new ApiClient(ApiAccess.fromText(kubeconfig(server.url)), OPTIONS);
  const watch = watchRecorder();
  const watching = await client.watch("/api/v1/pods?watch=1", watch.onEvent, watch.onEnded);
  await within(watch.first, "the first event");
  watching.abort();
  const error = await within(watch.ended, "the watch ended");
  assert(error instanceof Error);
  assertEquals(error.message, "the watch was stopped");
  await within(closed.promise, "the server saw the connection close");
  watching.abort();
  await delay(50);
  assertEquals(watch.ends.length, 1, "ended once");
  assertEquals(watch.events.length, 1);
});

Deno.test("api client: a refused watch rejects with ApiStatusError", async () => {
  await using server = fakeApi(() =>
    json({
      kind: "Status",
      status: "Failure",
      message: "too old resource version: 1 (42)",
      reason: "Expired",
      code: 410,
    }, 410)
  );
  const client = new ApiClient(ApiAccess.fromText(kubeconfig(server.url)), OPTIONS);
  const watch = watchRecorder();
  const error = await client.watch(
    "/api/v1/pods?watch=1&resourceVersion=1",
    watch.onEvent,
    watch.onEnded,
  ).then(() => undefined, (e: unknown) => e);
  assert(error instanceof ApiStatusError, `not an ApiStatusError: ${error}`);
  assertEquals(error.status, 410);
  assertEquals(error.message, "HTTP 410: too old resource version: 1 (42)");
  assertEquals(watch.ends, [], "a watch that never opened does not end");
});

Deno.test("api client: https with the kubeconfig's CA, and a TLS failure without it", async () => {
  const tls = await generateSimTls();
  const closed = later<unknown>();
  await using server = fakeApi((request, stopping) => {
    if (new URL(request.url).searchParams.has("watch")) {
      return streamed([line("ADDED", "a")], { open: stopping, closed: closed.resolve });
    }
    return json({ kind: "Namespace", authorization: request.headers.get("authorization") });
  }, { cert: tls.certPem, key: tls.keyPem });
  // The simulator's certificate names both.
  for (const host of ["127.0.0.1", "localhost"]) {
    const url = `https://${host}:${server.port}`;
    const client = new ApiClient(ApiAccess.fromText(kubeconfig(url, tls.caPem)), OPTIONS);
    assertEquals(await client.get("/api/v1/namespaces/default"), {
      kind: "Namespace",
      authorization: `Bearer ${TOKEN}`,
    });
  }

  const client = new ApiClient(ApiAccess.fromText(kubeconfig(server.url, tls.caPem)), OPTIONS);
  const watch = watchRecorder();
  const watching = await client.watch("/api/v1/pods?watch=1", watch.onEvent, watch.onEnded);
  await within(watch.first, "the first event");
  watching.abort();
  assertEquals((await within(watch.ended, "the watch ended"))?.message, "the watch was stopped");
  await within(closed.promise, "the server saw the TLS connection close");

  const untrusted = new ApiClient(ApiAccess.fromText(kubeconfig(server.url)), OPTIONS);
  await assertRejects(untrusted.get("/api/v1/namespaces/default"), (error: unknown) => {
    assert(error instanceof Error && !(error instanceof ApiStatusError), `got ${error}`);
    assertMatch(error.message, /certificate|UnknownIssuer/i);
    return true;
  });
});

Deno.test("api client: a watch line that never ends is cut at 16 MiB, ending the watch with an error, not holding the bytes", async () => {
  const closed = later<unknown>();
  const megabyte = "x".repeat(1024 * 1024);
  await using server = fakeApi((_, stopping) =>
    streamed(
      [line("ADDED", "a"), `{"type":"ADDED","object":{"pad":"`, ...Array(20).fill(megabyte)],
      {
        pauseMs: 1,
        open: stopping,
        closed: closed.resolve,
      },
    )
  );
  const client = new ApiClient(ApiAccess.fromText(kubeconfig(server.url)), OPTIONS);
  const watch = watchRecorder();
  await client.watch("/api/v1/pods?watch=1", watch.onEvent, watch.onEnded);
  const error = await within(watch.ended, "the watch ended", 10_000);
  assert(error instanceof Error);
  assertMatch(error.message, /an event over 16 MiB/);
  assertEquals(watch.events.map((e) => e.object.metadata.name), ["a"]);
  await within(closed.promise, "the server saw the connection close", 10_000);
});

Deno.test("api client: a refusal with a huge body keeps only the start of its message", async () => {
  const message = "no. ".repeat(200_000); // 800 KB
  await using server = fakeApi(() => json({ kind: "Status", message }, 403));
  const client = new ApiClient(ApiAccess.fromText(kubeconfig(server.url)), OPTIONS);
  const error = await client.get("/api/v1/pods").catch((e) => e);
  assert(error instanceof ApiStatusError);
  assertEquals(error.status, 403);
  assert(error.message.length <= 64 * 1024, `message of ${error.message.length} characters`);
});

Deno.test("api client: a watch event that is no {type, object}, or that its handler throws on, ends the watch with an error instead of escaping from the socket's listener", async () => {
  for (const bad of ['{"type":"ADDED","object":null}\n', '{"object":{}}\n', "[1,2]\n", "null\n"]) {
    await using server = fakeApi((_, stopping) =>
      streamed([line("ADDED", "a"), bad], { open: stopping })
    );
    const client = new ApiClient(ApiAccess.fromText(kubeconfig(server.url)), OPTIONS);
    const watch = watchRecorder();
    await client.watch("/api/v1/pods?watch=1", watch.onEvent, watch.onEnded);
    const error = await within(watch.ended, `the watch ended on ${bad.trim()}`);
    assertMatch(String(error), /no \{type, object\} event/);
    assertEquals(watch.events.length, 1);
  }
  await using server = fakeApi((_, stopping) =>
    streamed([line("ADDED", "a"), line("ADDED", "b")], { open: stopping })
  );
  const client = new ApiClient(ApiAccess.fromText(kubeconfig(server.url)), OPTIONS);
  const watch = watchRecorder();
  await client.watch("/api/v1/pods?watch=1", (event) => {
    watch.onEvent(event);
    if (event.object.metadata.name === "b") throw new TypeError("cannot read spec of undefined");
  }, watch.onEnded);
  const error = await within(watch.ended, "the watch ended");
  assertMatch(String(error), /cannot read spec of undefined/);
  assertEquals(watch.ends.length, 1);
});
