/**
 * The HTTP API (`--http PORT`): `/vips`, `/events` (SSE), `/metrics`, `/healthz` and the live
 * dashboard at `/`. Binds loopback only (127.0.0.1 and ::1) unless `--http-host` widens it with a
 * token set; every request passes the Host and token checks of `access.ts`.
 */
import { logger } from "../log.ts";
import { type AccessPolicy, checkAccess, redactToken } from "./access.ts";
import { DASHBOARD_HTML } from "./dashboard.ts";
import type { Metrics } from "./metrics.ts";
import type { NumberedEvent, TunnelState } from "./state.ts";
import { concatBytes } from "../stream/concat_bytes.ts";
import { HttpServer, type RequestInfo } from "./http_server.ts";

/** `/healthz` body (the Rust k8stun's shape, plus the packet loop, cluster and DNS detail). */
export interface Health {
  status: "ok" | "degraded";
  /** The TUN data plane's packet loop (core/net/data_plane/watchdog.ts): anything but up is a 503. */
  tun: "up" | "stalled" | "down";
  /** Packet loops started again after one failed or stalled. */
  tun_restarts?: number;
  /** The DNS mode in effect. */
  dns_mode: string;
  /** The mode asked for, when another is in effect, and why. */
  dns_mode_requested?: string;
  dns_note?: string;
  cluster: string;
  errors?: string[];
}

/** What the API serves. */
export interface ApiServerOptions {
  port: number;
  /** Extra address to bind (`--http-host`); requires a token. */
  host?: string;
  token?: string;
  state: TunnelState;
  metrics: Metrics;
  health: () => Health;
  /** How often `vip_stats` events are published (default 1000 ms). */
  statsIntervalMs?: number;
  /** SSE keep-alive comment interval (default 15 s, as the Rust k8stun). */
  keepAliveMs?: number;
  /** Open `/events` streams at most; more get 503 (default {@link MAX_EVENT_SUBSCRIBERS}). */
  maxEventSubscribers?: number;
  /**
   * Bytes of events an `/events` subscriber may have waiting; one that falls further behind is
   * dropped, and resumes with `Last-Event-ID` (default {@link MAX_EVENT_QUEUE_BYTES}).
   */
  maxEventQueueBytes?: number;
}

/** Default cap on open `/events` streams (dashboards and scripts; each holds a queue). */
export const MAX_EVENT_SUBSCRIBERS = 32;
/** Default per-subscriber queue: about a thousand typical events. */
export const MAX_EVENT_QUEUE_BYTES = 1024 * 1024;

/** A running API server. */
export interface ApiServer {
  /** The bound port (useful with port 0). */
  port: number;
  /** Base URL on 127.0.0.1. */
  url: string;
  close(): Promise<void>;
}

const log = logger("api");
const encoder = new TextEncoder();

/** Starts the API server. */
export function startApiServer(options: ApiServerOptions): Promise<ApiServer> {
  if (options.host && !["127.0.0.1", "::1", "localhost"].includes(options.host) && !options.token) {
    throw new Error(
      `--http-host ${options.host} exposes the API beyond this machine; set --http-token too`,
    );
  }
  const policy: AccessPolicy = { extraHost: options.host, token: options.token };
  const subscribers: EventSubscribers = { closers: new Set(), encoded: new WeakMap() };
  const closers = subscribers.closers;
  const handler = (request: Request, info: RequestInfo) =>
    handle(request, info, options, policy, subscribers);
  let primary: HttpServer;
  try {
    primary = new HttpServer("127.0.0.1", options.port, handler);
  } catch (error) {
    if (!(error instanceof Deno.errors.AddrInUse)) throw error;
    throw new Error(
      `the HTTP API cannot listen on 127.0.0.1:${options.port}: something else (another ` +
        "k8stun?) uses that port; pick another with --http PORT",
    );
  }
  const port = primary.addr.port;
  const servers = [primary];
  for (const extra of ["::1", options.host]) {
    if (!extra || extra === "127.0.0.1" || extra === "localhost") continue;
    try {
      servers.push(new HttpServer(extra, port, handler));
    } catch (error) {
      log.debug("not listening on {address}: {error}", { address: extra, error: String(error) });
    }
  }
  if (options.host && options.host !== "127.0.0.1") {
    log.warn("HTTP API also listens on {host}:{port} (token required)", {
      host: options.host,
      port,
    });
  }
  const statsTimer = setInterval(() => options.state.flushStats(), options.statsIntervalMs ?? 1000);
  return Promise.resolve({
    port,
    url: `http://127.0.0.1:${port}`,
    async close() {
      clearInterval(statsTimer);
      for (const close of closers) close();
      await Promise.all(servers.map((server) => server.close()));
    },
  });
}

/** The open `/events` streams of one server. */
interface EventSubscribers {
  /** Ends each open stream (server shutdown); its size is the number of subscribers. */
  closers: Set<() => void>;
  /** Each event's SSE bytes, encoded once for all subscribers. */
  encoded: WeakMap<NumberedEvent, Uint8Array>;
}

function handle(
  request: Request,
  info: RequestInfo,
  options: ApiServerOptions,
  policy: AccessPolicy,
  subscribers: EventSubscribers,
): Response {
  const access = checkAccess(request, policy);
  if (!access.ok) {
    log.debug("refused {method} {url}", {
      method: request.method,
      url: redactToken(request.url),
    });
    return access.response;
  }
  const url = new URL(request.url);
  if (request.method !== "GET" && request.method !== "HEAD") {
    return new Response("method not allowed\n", { status: 405, headers: { allow: "GET, HEAD" } });
  }
  switch (url.pathname) {
    case "/":
      return new Response(DASHBOARD_HTML, {
        headers: { "content-type": "text/html; charset=utf-8", "cache-control": "no-cache" },
      });
    case "/vips":
      return json({ vips: options.state.vips() });
    case "/healthz": {
      const health = options.health();
      return json(health, health.status === "ok" && health.tun === "up" ? 200 : 503);
    }
    case "/metrics":
      return new Response(options.metrics.render(), {
        headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
      });
    case "/events":
      return events(request, info, options, subscribers);
    default:
      return new Response("not found\n", { status: 404 });
  }
}

function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json" },
  });
}

/**
 * The SSE stream: `retry: 3000`, then either a replay of the events after `Last-Event-ID` or a
 * snapshot, then live events, each with `id:` and an unnamed `data:` line so `onmessage` clients
 * of the Rust k8stun keep working (docs/compatibility.md §2).
 *
 * Bounded: at most `maxEventSubscribers` streams, and a subscriber whose unsent events reach
 * `maxEventQueueBytes` (it stopped reading, or reads slower than events come) is dropped. Its
 * EventSource reconnects by itself with the last id it got, and the replay ring fills the gap.
 */
function events(
  request: Request,
  info: RequestInfo,
  options: ApiServerOptions,
  subscribers: EventSubscribers,
): Response {
  const limit = options.maxEventSubscribers ?? MAX_EVENT_SUBSCRIBERS;
  if (subscribers.closers.size >= limit) {
    return new Response(
      `too many /events subscribers (${limit} open): close a dashboard tab or event stream, ` +
        "then retry\n",
      { status: 503, headers: { "retry-after": "5", "content-type": "text/plain" } },
    );
  }
  const header = request.headers.get("last-event-id");
  const lastEventId = header !== null && /^\d+$/.test(header.trim()) ? Number(header) : undefined;
  const queueBytes = options.maxEventQueueBytes ?? MAX_EVENT_QUEUE_BYTES;
  // Our own queue (the stream's holds at most what was pulled): dropping a subscriber discards it
  // and closes the stream cleanly, which EventSource answers by reconnecting.
  let queue: Uint8Array[] = [];
  let queued = 0;
  let wanted = false;
  let live = false;
  let cleanup = () => {};
  let close = () => {};
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      const send = (bytes: Uint8Array) => {
        if (wanted) {
          wanted = false;
          controller.enqueue(bytes);
          return;
        }
        queue.push(bytes);
        queued += bytes.length;
        // The replay or snapshot that opens the stream is kept whole (the ring and the VIP
        // table bound it); only live events can leave a subscriber behind.
        if (live && queued > queueBytes) {
          log.debug("dropped an /events subscriber {queued} bytes behind", { queued });
          close();
        }
      };
      const encodeEvent = (numbered: NumberedEvent) => {
        let bytes = subscribers.encoded.get(numbered);
        if (!bytes) {
          bytes = encoder.encode(`id: ${numbered.id}\ndata: ${JSON.stringify(numbered.event)}\n\n`);
          subscribers.encoded.set(numbered, bytes);
        }
        return bytes;
      };
      send(encoder.encode("retry: 3000\n\n"));
      const unsubscribe = options.state.subscribe(
        (numbered: NumberedEvent) => send(encodeEvent(numbered)),
        lastEventId,
      );
      const keepAlive = setInterval(
        () => send(encoder.encode(":\n\n")),
        options.keepAliveMs ?? 15_000,
      );
      cleanup = () => {
        unsubscribe();
        clearInterval(keepAlive);
        subscribers.closers.delete(close);
        queue = [];
        queued = 0;
      };
      close = () => {
        cleanup();
        try {
          controller.close();
        } catch {
          // already closed by the client
        }
      };
      subscribers.closers.add(close);
      live = true;
      info.completed.finally(cleanup).catch(() => {});
    },
    pull(controller) {
      if (queue.length === 0) {
        wanted = true;
        return;
      }
      controller.enqueue(queue.length === 1 ? queue[0] : concatBytes(queue));
      queue = [];
      queued = 0;
    },
    cancel() {
      cleanup();
    },
  }, { highWaterMark: 0 });
  return new Response(body, {
    headers: {
      "content-type": "text/event-stream",
      "cache-control": "no-cache",
      "x-accel-buffering": "no",
    },
  });
}
