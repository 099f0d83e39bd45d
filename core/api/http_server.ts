/**
 * The HTTP API's server: a fetch-style handler served over HTTP/1.1 on a guarded accept loop
 * (core/guarded_listener.ts), one request per connection.
 *
 * Why not `Deno.serve`: its accept loop takes every connection offered, and a failed accept
 * rejects a promise no caller can handle. A local user holding 20,000 idle connections to the
 * API's port took k8stun to the descriptor limit, and the first `EMFILE` ended the process with
 * the system's DNS still pointed at it (tests/adversarial/api_flood_test.ts). Here the connections
 * are capped in total and per source, a request head must arrive within seconds, and an accept
 * that fails waits and tries again.
 *
 * The API answers GET and HEAD with small bodies, plus the `/events` stream, so one request per
 * connection (`connection: close`, RFC 9112 §9.6) costs a client one TCP handshake on loopback
 * and spares the server keep-alive and pipelining. A finite body is sent with its length; an
 * event stream (`text/event-stream`) as it comes, delimited by the close (RFC 9112 §6.3), and it
 * ends when the client closes its side.
 */
import { type GuardedConn, GuardedListener, type ListenerLimits } from "../guarded_listener.ts";
import { readRequestHead } from "../http1/request_head.ts";
import { responseHead, textResponse } from "../http1/response.ts";
import { BufferedConn } from "../stream/buffered_conn.ts";
import { deadline } from "../deadline.ts";
import { concatBytes } from "../stream/concat_bytes.ts";

/** What a handler learns about its request beyond the request itself. */
export interface RequestInfo {
  remoteAddr: { hostname: string; port: number };
  /** Settles when the response has been sent, or the client has gone. */
  completed: Promise<void>;
}

export type RequestHandler = (request: Request, info: RequestInfo) => Response | Promise<Response>;

/**
 * Local clients are a browser's few connections, `curl`, a Prometheus scraper, a script or two;
 * past these counts a connection is closed at once. All of a laptop's clients share 127.0.0.1,
 * so the per-source cap is most of the total.
 */
export const API_LIMITS: ListenerLimits = {
  maxConnections: 128,
  maxPerSource: 96,
  maxHandshakesPerSource: 64,
  handshakeMs: 10_000,
};
/** A request head longer than this gets 431. */
const MAX_HEAD = 16 * 1024;
/** A finite response must be taken by the client within this (an event stream has no limit). */
const RESPONSE_MS = 30_000;

/** Serves `handler` on `hostname:port` until {@link HttpServer.close}. */
export class HttpServer {
  readonly #listener: GuardedListener;

  constructor(
    hostname: string,
    port: number,
    readonly handler: RequestHandler,
    limits: ListenerLimits = API_LIMITS,
  ) {
    const socket = Deno.listen({ hostname, port });
    this.#listener = new GuardedListener(socket, {
      name: "api",
      limits,
      handle: (guarded) => this.#serve(guarded),
    });
  }

  get addr(): Deno.NetAddr {
    return this.#listener.addr;
  }

  /** Open connections, refused ones and those timed out (for tests and floods). */
  counts() {
    return this.#listener.counts();
  }

  /** Stops accepting and closes every connection, event streams included. */
  async close(): Promise<void> {
    this.#listener.close();
    await this.#listener.done;
  }

  async #serve(guarded: GuardedConn): Promise<void> {
    const { conn } = guarded;
    const reader = new BufferedConn(conn, guarded.handshakeDeadline);
    const head = await readRequestHead(reader, MAX_HEAD);
    guarded.established();
    if (!("method" in head)) {
      return await writeAll(conn, textResponse(head.status, head.message));
    }
    let request: Request | undefined;
    try {
      // Origin form only (RFC 9112 §3.2.1); the URL takes the path and query, and the Host header
      // stays a header, for the access check to judge.
      if (head.target.startsWith("/")) {
        request = new Request(`http://127.0.0.1${head.target}`, {
          method: head.method,
          headers: head.fields as [string, string][],
        });
      }
    } catch {
      // a method or header the Fetch API refuses (CONNECT, TRACE, a forbidden value)
    }
    if (!request) return await writeAll(conn, textResponse(400, "malformed request"));
    let done!: () => void;
    const completed = new Promise<void>((resolve) => done = resolve);
    try {
      const { address: hostname, port } = guarded.source;
      const response = await this.handler(request, { remoteAddr: { hostname, port }, completed });
      await sendResponse(conn, response, head.method === "HEAD");
    } finally {
      done();
    }
  }
}

/** Fields this server sets itself: the framing and the connection's fate are its to say. */
const FRAMING_FIELDS = new Set(["connection", "content-length", "keep-alive", "transfer-encoding"]);

/** Writes `response`: its head, then its body unless `headOnly`. */
async function sendResponse(conn: Deno.Conn, response: Response, headOnly: boolean) {
  const fields = [...response.headers].filter(([name]) => !FRAMING_FIELDS.has(name));
  fields.push(["date", new Date().toUTCString()], ["connection", "close"]);
  const streaming = response.body !== null &&
    (response.headers.get("content-type") ?? "").startsWith("text/event-stream");
  if (!streaming) {
    const body = new Uint8Array(await response.arrayBuffer());
    fields.push(["content-length", String(body.length)]);
    const head = responseHead(response.status, fields);
    const whole = headOnly ? head : concatBytes([head, body]);
    await deadline(writeAll(conn, whole), RESPONSE_MS, () => new Error("response not taken"));
    return;
  }
  if (headOnly) {
    await response.body!.cancel();
    return await writeAll(conn, responseHead(response.status, fields));
  }
  await writeAll(conn, responseHead(response.status, fields));
  const events = response.body!.getReader();
  // The client ends an event stream by closing its side: stop the stream then, rather than at
  // the next keep-alive comment that fails to send.
  drainUntilClosed(conn).finally(() => events.cancel().catch(() => {}));
  while (true) {
    const { value, done } = await events.read();
    if (done) return;
    await writeAll(conn, value);
  }
}

/** Reads and discards what the client sends after its request until it closes or fails. */
async function drainUntilClosed(conn: Deno.Conn): Promise<void> {
  const sink = new Uint8Array(1024);
  try {
    while (await conn.read(sink) !== null) {
      // nothing more is asked on this connection
    }
  } catch {
    // reset, or closed by us
  }
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let offset = 0; offset < bytes.length;) offset += await conn.write(bytes.subarray(offset));
}
