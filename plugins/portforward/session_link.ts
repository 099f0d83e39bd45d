/**
 * What a SPDY port-forward session runs over: the WebSocket tunnel (KEP-4006, Kubernetes 1.31+)
 * or the connection a direct `Upgrade: SPDY/3.1` switched (kubectl's transport before 1.31 and
 * its fallback after; docs/portforward.md §2). The session sees bytes either way; the link frames
 * them (WebSocket messages, or nothing), pauses reading, and tells when the peer was heard.
 */
import type { Duplex as NodeDuplex } from "node:stream";
// @ts-types="@types/ws"
import WebSocket from "ws";
import { DialError } from "../../mod.ts";
import { MaskedFrameEncoder } from "../../core/k8s/websocket_frame.ts";
import { CoalescingWriter, RAW_FRAMES } from "../../core/k8s/coalescing_writer.ts";
import type { SpdyLink } from "../../core/k8s/spdy/session.ts";
import { MAX_MESSAGE } from "./limits.ts";
import { upgradeRefusal, UpgradeRefused, upgradeToSpdy } from "./spdy_upgrade.ts";

/** The tunnelled subprotocol (docs/portforward.md §7). */
export const SPDY_TUNNEL_PROTOCOL = "SPDY/3.1+portforward.k8s.io";

/**
 * Opens the WebSocket tunnel; rejects with {@link UpgradeRefused} when the server does not tunnel
 * SPDY.
 */
export function openTunnelLink(url: string, options: WebSocket.ClientOptions): Promise<SpdyLink> {
  return new Promise((resolve, reject) => {
    // `ws` (like the WHATWG API) rejects "/" in a subprotocol token, but Kubernetes names the
    // tunnel "SPDY/3.1+portforward.k8s.io": send the header ourselves and take the server's
    // answer off the response before `ws` checks it (it then sees no subprotocol either way).
    let accepted = false;
    let socket: NodeDuplex | undefined;
    const ws = new WebSocket(url, {
      ...options,
      maxPayload: MAX_MESSAGE,
      // The SPDY header blocks are compressed already and the data is the app's: inflating
      // would only cost CPU and open the door to decompression bombs.
      perMessageDeflate: false,
      headers: {
        ...(options.headers as Record<string, string> | undefined),
        "Sec-WebSocket-Protocol": SPDY_TUNNEL_PROTOCOL,
      },
      finishRequest: (request) => {
        request.prependListener("upgrade", (response, upgraded) => {
          socket = upgraded;
          accepted = response.headers["sec-websocket-protocol"] === SPDY_TUNNEL_PROTOCOL;
          delete response.headers["sec-websocket-protocol"];
        });
        request.end();
      },
    });
    ws.binaryType = "nodebuffer";
    ws.on("unexpected-response", (_req, res) => {
      res.resume();
      reject(upgradeRefusal(res.statusCode ?? 0, "port-forward upgrade"));
      ws.terminate();
    });
    ws.once("error", (error: Error) => {
      reject(
        /subprotocol/.test(error.message) ? new UpgradeRefused(error.message) : new DialError(
          /timed out/i.test(error.message) ? "timeout" : "error",
          `port-forward connection: ${error.message}`,
        ),
      );
    });
    ws.once("open", () => {
      if (!accepted || !socket) {
        ws.terminate();
        reject(new UpgradeRefused("the server did not accept the SPDY tunnel"));
      } else resolve(webSocketLink(ws, socket));
    });
  });
}

/**
 * Opens a connection with a direct `Upgrade: SPDY/3.1` (`url` is https:// or http://); rejects
 * with {@link UpgradeRefused} when the server (or a proxy) does not switch.
 */
export async function openDirectLink(
  url: string,
  options: WebSocket.ClientOptions,
): Promise<SpdyLink> {
  const { socket, head } = await upgradeToSpdy(url, options);
  (socket as NodeDuplex & { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
  return socketLink(socket, head);
}

/**
 * The WebSocket tunnel. Every SPDY frame goes to the WebSocket's socket directly, as a message
 * masked by {@link MaskedFrameEncoder} into a {@link CoalescingWriter}'s buffer (frames sent
 * while a write is out share the next one, in order); `ws` reads, and writes only its own
 * control frames (pong, close).
 */
export function webSocketLink(ws: WebSocket, socket: NodeDuplex): SpdyLink {
  const frames = new CoalescingWriter(
    new MaskedFrameEncoder(),
    (bytes, done) => void socket.write(bytes, () => done()),
  );
  const none = new Uint8Array(0);
  return {
    get open() {
      return ws.readyState === WebSocket.OPEN;
    },
    get bufferedAmount() {
      return ws.bufferedAmount + frames.queuedBytes;
    },
    send: (frame) => frames.send(none, frame),
    sendData: (header, body) => frames.send(header, body),
    pause: () => ws.pause(),
    resume: () => ws.resume(),
    terminate: () => ws.terminate(),
    close: () => ws.close(1000),
    listen(handlers) {
      ws.on("message", (data: Uint8Array, isBinary: boolean) => {
        handlers.heard();
        if (isBinary) handlers.bytes(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      });
      ws.on("close", () => handlers.closed());
      ws.on("error", () => {});
      ws.on("pong", () => handlers.heard());
    },
  };
}

/**
 * The connection a direct SPDY upgrade switched: SPDY frames are its bytes. `head` holds bytes
 * that arrived with the 101 response; they are the session's first.
 */
export function socketLink(socket: NodeDuplex, head: Uint8Array): SpdyLink {
  let ended = false;
  const frames = new CoalescingWriter(
    RAW_FRAMES,
    (bytes, done) => void socket.write(bytes, () => done()),
  );
  const none = new Uint8Array(0);
  return {
    get open() {
      return !ended && !socket.destroyed && socket.writable;
    },
    get bufferedAmount() {
      return socket.writableLength + frames.queuedBytes;
    },
    send: (frame) => frames.send(none, frame),
    sendData: (header, body) => frames.send(header, body),
    pause: () => void socket.pause(),
    resume: () => void socket.resume(),
    terminate: () => void socket.destroy(),
    close: () => void socket.end(),
    listen(handlers) {
      const closed = () => {
        if (ended) return;
        ended = true;
        socket.destroy();
        handlers.closed();
      };
      // After the session is wired up, before anything the socket reads next.
      if (head.length > 0) {
        queueMicrotask(() => {
          if (ended) return;
          handlers.heard();
          handlers.bytes(head);
        });
      }
      socket.on("data", (data: Uint8Array) => {
        handlers.heard();
        handlers.bytes(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      });
      socket.on("end", closed);
      socket.on("close", closed);
      socket.on("error", () => {});
    },
  };
}
