/**
 * Proxy mode's listeners: SOCKS5 and HTTP (CONNECT, absolute-form, PAC), both feeding flows to
 * the same Router as TUN mode. Loopback by default; another address requires credentials.
 * Both listeners are guarded (core/guarded_listener.ts): handshake deadline, per-source and total
 * caps, and an accept loop that outlives descriptor exhaustion.
 */
import { connDuplex } from "../stream/conn_duplex.ts";
import { type GuardedConn, GuardedListener, type ListenerLimits } from "../guarded_listener.ts";
import { logger } from "../log.ts";
import { relay } from "../stream/relay.ts";
import { asDialError, type Router } from "../router.ts";
import { BufferedConn } from "../stream/buffered_conn.ts";
import { readProxyRequest } from "./http_proxy.ts";
import { textResponse } from "../http1/response.ts";
import { type ProxyAuth, replyFor, socks5Handshake, SocksReply } from "./socks5.ts";
import type { Duplex, FlowRequest } from "../../mod.ts";

const log = logger("proxy");

/**
 * Default limits per listener. Every local client shares the source 127.0.0.1, so the per-source
 * bounds leave room for bursts (a parallel build fetching through the proxy); they still keep one
 * address from holding more than a quarter of the slots, and the deadline frees those in 2 s.
 */
export const PROXY_LIMITS: ListenerLimits = {
  maxConnections: 2048,
  descriptorsEach: 2, // the client's and the dial's
  maxPerSource: 512,
  maxHandshakesPerSource: 256,
  handshakeMs: 2_000,
};

/** Where and how to listen. */
export interface ProxyOptions {
  router: Router;
  socks?: { hostname: string; port: number };
  http?: { hostname: string; port: number };
  auth?: ProxyAuth;
  /** The PAC file, built on request (namespaces change). */
  pac: () => string;
  /** Connection limits (default {@link PROXY_LIMITS}). */
  limits?: Partial<ListenerLimits>;
}

/** Running listeners. */
export interface ProxyServer {
  socksAddress?: { hostname: string; port: number };
  httpAddress?: { hostname: string; port: number };
  /** Open client connections (for leak checks). */
  activeConnections(): number;
  close(): Promise<void>;
}

const LOOPBACK = new Set(["127.0.0.1", "::1", "localhost"]);

/** Starts the listeners. */
export function startProxy(options: ProxyOptions): ProxyServer {
  for (const listen of [options.socks, options.http]) {
    if (listen && !LOOPBACK.has(listen.hostname) && !options.auth) {
      throw new Error(
        `listening on ${listen.hostname} would open the cluster to the network; set --proxy-user and --proxy-password, or listen on 127.0.0.1`,
      );
    }
  }
  const limits = { ...PROXY_LIMITS, ...options.limits };
  const listeners: GuardedListener[] = [];
  const serve = (
    name: string,
    address: { hostname: string; port: number },
    handle: (guarded: GuardedConn) => Promise<void>,
  ) => {
    let socket: Deno.Listener;
    try {
      socket = Deno.listen({ ...address, transport: "tcp" });
    } catch (error) {
      for (const started of listeners) started.close(); // the SOCKS one, when HTTP fails
      if (!(error instanceof Deno.errors.AddrInUse)) throw error;
      const flags = name === "socks"
        ? "`k8stun proxy --listen-socks`, `k8stun run --socks`"
        : "`k8stun proxy --listen-http`";
      throw new Error(
        `the ${name === "socks" ? "SOCKS5" : "HTTP"} proxy cannot listen on ` +
          `${address.hostname}:${address.port}: something else uses that port; give it another ` +
          `address (${flags})`,
      );
    }
    const listener = new GuardedListener(socket, { name, limits, handle });
    listeners.push(listener);
    return listener;
  };
  /** Opens the flow and relays; `ready` sends the front's success reply first. */
  const connect = async (
    conn: Deno.Conn,
    reader: BufferedConn,
    flow: FlowRequest,
    ready: () => Promise<void>,
    failed: (reason: string, message: string) => Promise<void>,
    firstBytes?: Uint8Array,
  ) => {
    const abort = new AbortController();
    let opened;
    try {
      opened = await options.router.open(flow, abort.signal);
    } catch (error) {
      const failure = asDialError(error, "router");
      log.info("{front} {target}:{port} failed: {message}", {
        front: flow.front,
        target: flow.name ?? flow.address,
        port: flow.port,
        message: failure.message,
      });
      await failed(failure.reason, failure.message);
      return;
    }
    await ready();
    const client: Duplex = connDuplex(conn);
    const upstream = opened.duplex;
    const initial = new Uint8Array([...(firstBytes ?? []), ...reader.rest()]);
    if (initial.length > 0) {
      const writer = upstream.writable.getWriter();
      await writer.write(initial);
      writer.releaseLock();
    }
    await relay(client, upstream);
  };

  const socks = options.socks &&
    serve("socks", options.socks, async ({ conn, source, handshakeDeadline, established }) => {
      const reader = new BufferedConn(conn, handshakeDeadline);
      const request = await socks5Handshake(reader, options.auth, source);
      established();
      if (!request.ok) return;
      const reply = request.reply;
      await connect(
        conn,
        reader,
        request.flow,
        () => reply(SocksReply.succeeded),
        (reason) => reply(replyFor(reason as never)),
      );
    });
  const http = options.http &&
    serve("http", options.http, async ({ conn, source, handshakeDeadline, established }) => {
      const reader = new BufferedConn(conn, handshakeDeadline);
      const request = await readProxyRequest(reader, options.auth, source);
      established();
      const send = (bytes: Uint8Array) => conn.write(bytes).then(() => {});
      const fail = (reason: string, message: string) =>
        send(
          textResponse(reason === "timeout" ? 504 : reason === "forbidden" ? 403 : 502, message),
        );
      switch (request.kind) {
        case "error":
          return send(textResponse(request.status, request.message, request.headers));
        case "pac":
          return send(
            new TextEncoder().encode(
              `HTTP/1.1 200 OK\r\ncontent-type: application/x-ns-proxy-autoconfig\r\nconnection: close\r\n\r\n${options.pac()}`,
            ),
          );
        case "connect":
          return connect(
            conn,
            reader,
            request.flow,
            () => send(new TextEncoder().encode("HTTP/1.1 200 Connection Established\r\n\r\n")),
            fail,
          );
        case "forward":
          return connect(conn, reader, request.flow, () => Promise.resolve(), fail, request.head);
      }
    });
  const address = (listener: GuardedListener | undefined) =>
    listener && { hostname: listener.addr.hostname, port: listener.addr.port };
  return {
    socksAddress: address(socks),
    httpAddress: address(http),
    activeConnections: () => listeners.reduce((sum, l) => sum + l.counts().open, 0),
    close() {
      for (const listener of listeners) listener.close();
      return Promise.resolve();
    },
  };
}
