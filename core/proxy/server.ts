/**
 * Proxy mode's listeners: SOCKS5 and HTTP (CONNECT, absolute-form, PAC), both feeding flows to
 * the same Router as TUN mode. Loopback by default; another address requires credentials.
 * Handshakes have a deadline and a concurrency cap, so a silent or hostile client costs nothing.
 */
import { connDuplex } from "../conn_duplex.ts";
import { logger } from "../log.ts";
import { relay } from "../relay.ts";
import { asDialError, type Router } from "../router.ts";
import { BufferedConn } from "./buffered_conn.ts";
import { readProxyRequest, textResponse } from "./http_proxy.ts";
import { type ProxyAuth, replyFor, socks5Handshake, SocksReply } from "./socks5.ts";
import type { Duplex, FlowRequest } from "../../mod.ts";

const log = logger("proxy");
const HANDSHAKE_MS = 10_000;
const MAX_HANDSHAKES = 256;

/** Where and how to listen. */
export interface ProxyOptions {
  router: Router;
  socks?: { hostname: string; port: number };
  http?: { hostname: string; port: number };
  auth?: ProxyAuth;
  /** The PAC file, built on request (namespaces change). */
  pac: () => string;
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
  const conns = new Set<Deno.Conn>();
  let handshakes = 0;
  const listeners: Deno.Listener[] = [];
  const accept = (listener: Deno.Listener, handle: (conn: Deno.Conn) => Promise<void>) => {
    listeners.push(listener);
    (async () => {
      for await (const conn of listener) {
        if (handshakes >= MAX_HANDSHAKES) {
          conn.close();
          continue;
        }
        conns.add(conn);
        handle(conn).catch((error) =>
          log.debug("proxy connection ended: {error}", { error: String(error) })
        )
          .finally(() => {
            conns.delete(conn);
            try {
              conn.close();
            } catch {
              // closed already
            }
          });
      }
    })().catch(() => {});
  };
  const source = (conn: Deno.Conn) => {
    const addr = conn.remoteAddr as Deno.NetAddr;
    return { address: addr.hostname, port: addr.port };
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

  if (options.socks) {
    accept(Deno.listen({ ...options.socks, transport: "tcp" }), async (conn) => {
      handshakes++;
      let request;
      const reader = new BufferedConn(conn, Date.now() + HANDSHAKE_MS);
      try {
        request = await socks5Handshake(reader, options.auth, source(conn));
      } finally {
        handshakes--;
      }
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
  }
  if (options.http) {
    accept(Deno.listen({ ...options.http, transport: "tcp" }), async (conn) => {
      handshakes++;
      let request;
      const reader = new BufferedConn(conn, Date.now() + HANDSHAKE_MS);
      try {
        request = await readProxyRequest(reader, options.auth, source(conn));
      } finally {
        handshakes--;
      }
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
  }
  const address = (i: number) => {
    const l = listeners[i];
    const a = l?.addr as Deno.NetAddr | undefined;
    return a ? { hostname: a.hostname, port: a.port } : undefined;
  };
  return {
    socksAddress: options.socks ? address(0) : undefined,
    httpAddress: options.http ? address(options.socks ? 1 : 0) : undefined,
    activeConnections: () => conns.size,
    close() {
      for (const l of listeners) l.close();
      for (const c of conns) {
        try {
          c.close();
        } catch {
          // closed already
        }
      }
      return Promise.resolve();
    },
  };
}
