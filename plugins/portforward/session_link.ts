/**
 * What a SPDY port-forward session runs over: the WebSocket tunnel (KEP-4006, Kubernetes 1.31+)
 * or the connection a direct `Upgrade: SPDY/3.1` switched (kubectl's transport before 1.31 and
 * its fallback after; docs/portforward.md §2). The session sees bytes either way; the link frames
 * them (WebSocket messages, or nothing), pauses reading, and tells when the peer was heard.
 */
import type { Duplex as NodeDuplex } from "node:stream";
import type { ApiRequestOptions } from "../../core/k8s/api_connection.ts";
import { DialError } from "../../mod.ts";
import { MaskedFrameEncoder } from "../../core/k8s/websocket_frame.ts";
import {
  CLOSE_NORMAL,
  OPCODE_CLOSE,
  OPCODE_PONG,
  WebSocketProtocolError,
  WebSocketReader,
} from "../../core/k8s/websocket_reader.ts";
import {
  webSocketKey,
  webSocketSwitchProblem,
  webSocketUpgradeHeaders,
} from "../../core/k8s/websocket_upgrade.ts";
import { CoalescingWriter, RAW_FRAMES } from "../../core/k8s/coalescing_writer.ts";
import type { SpdyLink } from "../../core/k8s/spdy/session.ts";
import { MAX_MESSAGE, SEND_HIGH_WATER } from "./limits.ts";
import { upgradeConnection, UpgradeRefused, upgradeToSpdy } from "./spdy_upgrade.ts";

/** The tunnelled subprotocol (docs/portforward.md §7). */
export const SPDY_TUNNEL_PROTOCOL = "SPDY/3.1+portforward.k8s.io";

/** How long a closing tunnel waits for the server to close the connection (RFC 6455 §7.1.1). */
const CLOSE_WAIT_MS = 2_000;

/**
 * Opens the WebSocket tunnel (`url` is wss:// or ws://) with our own upgrade request: `ws` (like
 * the WHATWG API) rejects "/" in a subprotocol token, and its receiver is not needed (see
 * websocket_reader.ts). Rejects with {@link UpgradeRefused} when the server does not tunnel SPDY.
 */
export async function openTunnelLink(
  url: string,
  options: ApiRequestOptions,
): Promise<SpdyLink> {
  const key = webSocketKey();
  const { socket, head } = await upgradeConnection(url.replace(/^ws/, "http"), options, {
    method: "GET",
    headers: webSocketUpgradeHeaders(key, SPDY_TUNNEL_PROTOCOL),
    what: "port-forward upgrade",
    check(headers) {
      const problem = webSocketSwitchProblem(headers, key, SPDY_TUNNEL_PROTOCOL);
      if (!problem) return undefined;
      return "refused" in problem
        ? new UpgradeRefused(problem.refused)
        : new DialError("error", `port-forward connection: ${problem.broken}`);
    },
  });
  (socket as NodeDuplex & { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
  return webSocketLink(socket, head);
}

/**
 * Opens a connection with a direct `Upgrade: SPDY/3.1` (`url` is https:// or http://); rejects
 * with {@link UpgradeRefused} when the server (or a proxy) does not switch.
 */
export async function openDirectLink(
  url: string,
  options: ApiRequestOptions,
): Promise<SpdyLink> {
  const { socket, head } = await upgradeToSpdy(url, options);
  (socket as NodeDuplex & { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
  return socketLink(socket, head);
}

/**
 * The WebSocket tunnel over the connection its upgrade switched (`head`: bytes that came with
 * the 101). Every SPDY frame goes out as a binary message masked by {@link MaskedFrameEncoder}
 * into a {@link CoalescingWriter}'s buffer (frames sent while a write is out share the next one,
 * in order), pongs and the close among them. A {@link WebSocketReader} hands the messages'
 * payloads to the session as they arrive; a frame the client must refuse closes the link with
 * the status RFC 6455 §7.4.1 gives it.
 */
export function webSocketLink(socket: NodeDuplex, head: Uint8Array): SpdyLink {
  const encoder = new MaskedFrameEncoder();
  const frames = new CoalescingWriter(
    encoder,
    (bytes, done) => void socket.write(bytes, () => done()),
  );
  const pong = encoder.withOpcode(OPCODE_PONG);
  const closeFrame = encoder.withOpcode(OPCODE_CLOSE);
  const none = new Uint8Array(0);
  /** We sent a close frame: nothing may follow it (RFC 6455 §5.5.1). */
  let closing = false;
  let ended = false;
  let closeTimer: ReturnType<typeof setTimeout> | undefined;
  /**
   * Sends a close frame with `code`, then ends our side once it is written; the server closes
   * the TCP connection (§7.1.1), or we do after {@link CLOSE_WAIT_MS}.
   */
  const sendClose = (code: number | undefined) => {
    if (closing || ended) return;
    closing = true;
    const body = code === undefined ? none : new Uint8Array([code >>> 8, code & 0xff]);
    frames.send(none, body, closeFrame);
    frames.whenDrained(() => socket.end());
    closeTimer = setTimeout(() => socket.destroy(), CLOSE_WAIT_MS);
  };
  return {
    get open() {
      return !closing && !ended && !socket.destroyed && socket.writable;
    },
    get bufferedAmount() {
      return socket.writableLength + frames.queuedBytes;
    },
    send: (frame) => frames.send(none, frame),
    sendData: (header, body) => frames.send(header, body),
    pause: () => void socket.pause(),
    resume: () => void socket.resume(),
    terminate: () => void socket.destroy(),
    close: () => sendClose(CLOSE_NORMAL),
    listen(handlers) {
      /** The session hears the end once; the socket may still be sending our close frame. */
      const finish = () => {
        if (ended) return;
        ended = true;
        handlers.closed();
      };
      const closed = () => {
        clearTimeout(closeTimer);
        socket.destroy();
        finish();
      };
      const reader = new WebSocketReader({
        frame: () => handlers.heard(),
        binary: (bytes) => {
          if (!ended) handlers.bytes(bytes);
        },
        // A pong is owed (§5.5.2), but not to a server that sends pings and reads nothing: past
        // the send high-water mark they would pile up here without bound.
        ping: (payload) => {
          if (!closing && socket.writableLength + frames.queuedBytes <= SEND_HIGH_WATER) {
            frames.send(none, payload, pong);
          }
        },
        pong: () => {},
        close: (code) => {
          sendClose(code);
          finish();
        },
      }, MAX_MESSAGE);
      const read = (bytes: Uint8Array) => {
        if (ended) return;
        try {
          reader.push(bytes);
        } catch (error) {
          if (!(error instanceof WebSocketProtocolError)) throw error;
          sendClose(error.code);
          finish();
        }
      };
      // After the session is wired up, before anything the socket reads next.
      if (head.length > 0) queueMicrotask(() => read(head));
      socket.on("data", (data: Uint8Array) => {
        read(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      });
      socket.on("end", closed);
      socket.on("close", closed);
      socket.on("error", () => {});
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
