/**
 * What a SPDY port-forward session runs over: the WebSocket tunnel (KEP-4006, Kubernetes 1.31+)
 * or the connection a direct `Upgrade: SPDY/3.1` switched (kubectl's transport before 1.31 and
 * its fallback after; kubernetes.md §3.1). The session sees bytes either way; the link frames
 * them (WebSocket messages, or nothing), pauses reading, and tells when the peer was heard.
 */
import type { Duplex as NodeDuplex } from "node:stream";
// @ts-types="@types/ws"
import WebSocket from "ws";
import { MaskedFrameEncoder } from "../../core/k8s/websocket_frame.ts";

/** The session's side of a link. */
export interface SessionLink {
  /** Frames may be sent (the link is up and not closing). */
  readonly open: boolean;
  /** Bytes written and not yet taken by the kernel. */
  readonly bufferedAmount: number;
  /** Sends a SPDY frame the session built (it is not reused). */
  send(frame: Uint8Array): void;
  /**
   * Sends a data frame as `header` then `body`; both are copied before this returns (the header
   * is reused, the body is the app's).
   */
  sendData(header: Uint8Array, body: Uint8Array): void;
  /** Stops and resumes reading from the API server (backpressure). */
  pause(): void;
  resume(): void;
  /** Ends the link at once. */
  terminate(): void;
  /** Ends the link politely. */
  close(): void;
  /** Wires the session: bytes received, the link ended, anything at all heard from the peer. */
  listen(handlers: { bytes(bytes: Uint8Array): void; closed(): void; heard(): void }): void;
}

/**
 * The WebSocket tunnel. Data frames are written to the WebSocket's socket directly, as messages
 * built by {@link MaskedFrameEncoder}; control frames go through `ws`. Both write synchronously,
 * so frames keep their order.
 */
export function webSocketLink(ws: WebSocket, socket: NodeDuplex): SessionLink {
  const frames = new MaskedFrameEncoder();
  return {
    get open() {
      return ws.readyState === WebSocket.OPEN;
    },
    get bufferedAmount() {
      return ws.bufferedAmount;
    },
    send: (frame) => ws.send(frame),
    sendData: (header, body) => void socket.write(frames.encode(header, body)),
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
export function socketLink(socket: NodeDuplex, head: Uint8Array): SessionLink {
  let ended = false;
  return {
    get open() {
      return !ended && !socket.destroyed && socket.writable;
    },
    get bufferedAmount() {
      return socket.writableLength;
    },
    send: (frame) => void socket.write(frame),
    sendData(header, body) {
      const frame = new Uint8Array(header.length + body.length);
      frame.set(header);
      frame.set(body, header.length);
      socket.write(frame);
    },
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
