/**
 * The simulated API server's sockets: a `node:http` server (behind Deno's TLS), because port-forward
 * needs control over the upgrade that `Deno.serve` does not give (Deno's upgrade splits the
 * subprotocol offer on ", " only, while clients such as `ws` send "a,b"). REST requests are
 * turned into fetch `Request`s for `server.ts`; upgrades are checked there and accepted with
 * `ws`.
 */
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type ServerResponse,
} from "node:http";
import type { Buffer } from "node:buffer";
import type { Duplex as NodeDuplex } from "node:stream";
// @ts-types="@types/ws"
import { type WebSocket, WebSocketServer } from "ws";
import { type MessageSocket, serveV4PortForward } from "./portforward/v4.ts";
import { checkPortForward, SPDY_DIRECT, SPDY_TUNNEL } from "./portforward/request.ts";
import { handleSimRequest, type SimServerContext } from "./server.ts";
import { status } from "./status.ts";
import { serveSpdyPortForward } from "./portforward/spdy_server.ts";
import type { ByteTransport } from "./portforward/types.ts";
import type { SimTls } from "./tls.ts";
import { MAX_BODY_BYTES } from "./writes.ts";
import { DenoTlsSocket } from "../core/k8s/deno_tls_socket.ts";
import { concatBytes } from "../core/stream/concat_bytes.ts";
import { setListenerNoDelay } from "../ffi/linux/socket_nodelay.ts";
import { GuardedListener } from "../core/guarded_listener.ts";
import { SIM_LIMITS } from "./tcp_server.ts";

/** A listening simulated API server. */
export interface SimHttpServer {
  port: number;
  close(): Promise<void>;
}

/** Listens on `hostname:port` and serves `ctx`. */
export function listenSim(
  ctx: SimServerContext,
  options: { hostname: string; port: number; tls?: SimTls },
): Promise<SimHttpServer> {
  const sockets = new Set<NodeDuplex>();
  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    respond(req, res, ctx).catch(() => res.destroy());
  };
  const server = createHttpServer(onRequest);
  server.on("connection", (socket: NodeDuplex) => {
    // Like Go's net/http (the real API server), no Nagle: small frames go out at once.
    (socket as NodeDuplex & { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  server.on("upgrade", (req: IncomingMessage, socket: NodeDuplex, head: Buffer) => {
    if (ctx.faults.stallUpgrades) return; // hold the socket open, answer nothing
    const request = toRequest(req, options.tls !== undefined);
    const checked = checkPortForward(request, ctx);
    if (checked instanceof Response) {
      writeRawResponse(socket, checked);
      return;
    }
    ctx.upgrades.set(checked.protocol, (ctx.upgrades.get(checked.protocol) ?? 0) + 1);
    if (checked.protocol === SPDY_DIRECT) {
      socket.write(
        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n" +
          "X-Stream-Protocol-Version: portforward.k8s.io\r\n\r\n",
      );
      serveSpdyPortForward(socketTransport(socket, head), checked.context);
      return;
    }
    // The chosen protocol must be the one echoed back, whatever order the client offered.
    const chooser = new WebSocketServer({
      noServer: true,
      handleProtocols: () => checked.protocol || false,
    });
    // `ws` rejects "/" in a subprotocol token, and Kubernetes' tunnel is named
    // "SPDY/3.1+portforward.k8s.io": hand `ws` a placeholder; it echoes what handleProtocols returns.
    if (checked.protocol === SPDY_TUNNEL) {
      req.headers["sec-websocket-protocol"] = "k8stun-spdy-tunnel";
    }
    chooser.handleUpgrade(req, socket, head, (ws: WebSocket) => {
      ws.binaryType = "nodebuffer";
      // A client that breaks the WebSocket protocol loses its connection, not the server: `ws`
      // reports the bad frame as an "error" event, fatal to the process when nobody listens.
      ws.on("error", () => ws.terminate());
      const messageSocket: MessageSocket = {
        send: (data) => ws.send(data),
        close: (code) => ws.close(code),
        isOpen: () => ws.readyState === ws.OPEN,
        onMessage: (listener) =>
          ws.on(
            "message",
            (data: Uint8Array, isBinary: boolean) =>
              listener(isBinary ? new Uint8Array(data) : new TextDecoder().decode(data)),
          ),
        onClose: (listener) => ws.on("close", listener),
      };
      if (checked.protocol === SPDY_TUNNEL) {
        const transport = tunnelTransport(ws);
        serveSpdyPortForward(
          ctx.refragment ? refragmenting(transport) : transport,
          checked.context,
        );
        return;
      }
      serveV4PortForward(
        messageSocket,
        checked.ports,
        checked.context,
        checked.protocol === "v4.base64.channel.k8s.io",
      );
    });
  });
  const closeAll = (listening: boolean) =>
    new Promise<void>((done) => {
      for (const socket of sockets) socket.destroy();
      if (!listening) return done();
      // Upgraded and keep-alive sockets can outlive destroy(); do not wait on them forever.
      const timer = setTimeout(done, 500);
      server.close(() => {
        clearTimeout(timer);
        done();
      });
    });
  if (options.tls) {
    // HTTPS with Deno's TLS, each connection handed to the HTTP server as a socket that reads
    // only when asked: a `node:tls` server socket keeps reading after pause(), so a client
    // uploading into a pod that does not read would fill this process instead of stalling.
    const listener = Deno.listenTls({
      hostname: options.hostname,
      port: options.port,
      cert: options.tls.certPem,
      key: options.tls.keyPem,
    });
    const guarded = new GuardedListener(listener, {
      name: "simulated API server",
      limits: SIM_LIMITS,
      waitWhenFull: true,
      handle: ({ conn, established }) => {
        established();
        const socket = new DenoTlsSocket(() => (conn as Deno.TlsConn).handshake().then(() => conn));
        socket.on("error", () => socket.destroy());
        server.emit("connection", socket);
        return new Promise<void>((resolve) => socket.once("close", () => resolve()));
      },
    });
    const port = guarded.addr.port;
    // Like Go's net/http (the real API server), no Nagle; Deno's TLS connections cannot be told
    // so one by one, so the listening socket is (its connections inherit it, on Linux).
    const noDelay = Deno.build.os === "linux"
      ? setListenerNoDelay(port).catch(() => false)
      : Promise.resolve(false);
    return noDelay.then(() => ({
      port,
      close: () => {
        guarded.close();
        return closeAll(false);
      },
    }));
  }
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.hostname, () => {
      const address = server.address();
      resolve({
        port: typeof address === "object" && address ? address.port : options.port,
        close: () => closeAll(true),
      });
    });
  });
}

function toRequest(
  req: IncomingMessage,
  tls: boolean,
  body?: Uint8Array<ArrayBuffer>,
): Request {
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (Array.isArray(value)) { for (const v of value) headers.append(name, v); }
    else if (value !== undefined) headers.set(name, value);
  }
  return new Request(
    `${tls ? "https" : "http"}://${req.headers.host ?? "localhost"}${req.url ?? "/"}`,
    {
      method: req.method,
      headers,
      body: body && req.method !== "GET" && req.method !== "HEAD" ? body : undefined,
    },
  );
}

/** The request body, or undefined when it is larger than {@link MAX_BODY_BYTES}. */
async function readBody(req: IncomingMessage): Promise<Uint8Array<ArrayBuffer> | undefined> {
  const declared = Number(req.headers["content-length"] ?? 0);
  if (declared > MAX_BODY_BYTES) return undefined;
  const chunks: Uint8Array[] = [];
  let length = 0;
  for await (const chunk of req as AsyncIterable<Uint8Array>) {
    length += chunk.length;
    if (length > MAX_BODY_BYTES) return undefined;
    chunks.push(chunk);
  }
  return concatBytes(chunks);
}

async function respond(
  req: IncomingMessage,
  res: ServerResponse,
  ctx: SimServerContext,
): Promise<void> {
  const body = await readBody(req);
  if (body === undefined) {
    const tooLarge = status(
      413,
      "RequestEntityTooLarge",
      `the request body is larger than the simulated cluster takes (${MAX_BODY_BYTES} bytes)`,
    );
    res.writeHead(413, { "content-type": "application/json", connection: "close" });
    res.end(await tooLarge.text());
    return;
  }
  const response = await handleSimRequest(toRequest(req, false, body), ctx);
  const headers: Record<string, string> = {};
  response.headers.forEach((v, k) => {
    if (k !== "transfer-encoding") headers[k] = v;
  });
  res.writeHead(response.status, headers);
  if (!response.body) {
    res.end();
    return;
  }
  // A watch answers with its headers at once, before any event, as the API server does:
  // client-go's Watch() waits for them and times out otherwise.
  res.flushHeaders();
  const reader = response.body.getReader();
  res.on("close", () => reader.cancel().catch(() => {}));
  while (true) {
    const { done, value } = await reader.read();
    if (done) break;
    if (!res.write(value)) await new Promise((r) => res.once("drain", r));
  }
  res.end();
}

function writeRawResponse(socket: NodeDuplex, response: Response): void {
  response.text().then((body) => {
    const reason = response.status === 401
      ? "Unauthorized"
      : response.status === 403
      ? "Forbidden"
      : response.status === 404
      ? "Not Found"
      : "Bad Request";
    const lines = [`HTTP/1.1 ${response.status} ${reason}`];
    response.headers.forEach((v, k) => lines.push(`${k}: ${v}`));
    lines.push(
      `content-length: ${new TextEncoder().encode(body).length}`,
      "connection: close",
      "",
      body,
    );
    socket.end(lines.join("\r\n"));
  });
}

/** The SPDY tunnel's WebSocket as a byte pipe: binary messages carry SPDY bytes; text → Close. */
function tunnelTransport(ws: WebSocket): ByteTransport {
  return {
    write: (bytes) => ws.send(bytes),
    onData: (listener) =>
      ws.on("message", (data: Uint8Array, isBinary: boolean) => {
        if (isBinary) listener(new Uint8Array(data));
        else ws.close(1000);
      }),
    onClose: (listener) => ws.on("close", listener),
    close: () => ws.close(1000),
    bufferedAmount: () => ws.bufferedAmount,
    pause: () => ws.pause(),
    resume: () => ws.resume(),
  };
}

/** A raw upgraded socket as a byte pipe (direct SPDY); `head` holds bytes read past the request. */
function socketTransport(socket: NodeDuplex, head: Buffer): ByteTransport {
  return {
    write: (bytes) => void socket.write(bytes),
    onData: (listener) => {
      if (head.length > 0) queueMicrotask(() => listener(new Uint8Array(head)));
      socket.on("data", (chunk: Uint8Array) => listener(new Uint8Array(chunk)));
    },
    onClose: (listener) => socket.on("close", listener),
    close: () => void socket.end(),
    bufferedAmount: () => socket.writableLength,
    pause: () => void socket.pause(),
    resume: () => void socket.resume(),
  };
}

/**
 * Test hook: the tunnel's byte pipe with server→client bytes re-framed at random (split inside
 * frames and frame headers, and coalesced across writes), as proxies and the API server may do.
 */
export function refragmenting(
  transport: ByteTransport,
  random: () => number = Math.random,
): ByteTransport {
  let pending: Uint8Array[] = [];
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    const all = new Uint8Array(pending.reduce((s, p) => s + p.length, 0));
    let offset = 0;
    for (const p of pending) {
      all.set(p, offset);
      offset += p.length;
    }
    pending = [];
    for (let i = 0; i < all.length;) {
      const n = 1 + Math.floor(random() * 300);
      transport.write(all.slice(i, i + n));
      i += n;
    }
  };
  return {
    ...transport,
    bufferedAmount: () =>
      transport.bufferedAmount() + pending.reduce((sum, bytes) => sum + bytes.length, 0),
    write(bytes) {
      pending.push(bytes.slice());
      if (!scheduled) {
        scheduled = true;
        setTimeout(flush, 0);
      }
    },
  };
}
