/**
 * One SPDY/3.1 port-forward session to a pod, tunnelled over a WebSocket (KEP-4006, the default
 * since Kubernetes 1.31; kubernetes.md §3): each connection is an error+data stream pair, so a new
 * connection costs two SYN_STREAMs on an open link instead of TLS + upgrade + authorisation. The
 * data stream half-closes with FIN (unlike v4); one stream's failure never ends the session.
 */
// @ts-types="@types/ws"
import WebSocket from "ws";
import { DialError, type Duplex } from "../../mod.ts";
import {
  controlFrame,
  dataFrame,
  FLAG_FIN,
  FrameParser,
  payloadStreamId,
  PING,
  RST_CANCEL,
  RST_STREAM,
  rstStreamPayload,
  SYN_REPLY,
  SYN_STREAM,
  synStreamPayload,
} from "../../core/k8s/spdy/frames.ts";
import { HeaderBlockEncoder } from "../../core/k8s/spdy/headers.ts";

/** The tunnelled subprotocol. */
export const SPDY_TUNNEL_PROTOCOL = "SPDY/3.1+portforward.k8s.io";
const REFUSAL_GRACE_MS = 40;
const MIN_GRACE_MS = 1;
const MAX_FRAME = 32 * 1024;
const SEND_HIGH_WATER = 4 * 1024 * 1024;
const PING_INTERVAL_MS = 15_000;
/**
 * The kubelet replies to a SYN_STREAM before it dials (§3.2), so a reply that takes longer than
 * this (or four round trips, if that is more) means the far side is wedged: the connection fails
 * as a timeout instead of hanging, and a PING checks whether the whole session is.
 */
const STREAM_REPLY_TIMEOUT_MS = 1_500;
const ERROR_END_WAIT_MS = 1_000;

/** The upgrade was refused (not 101 or not our subprotocol): fall back to v4. */
export class SpdyUnavailable extends Error {}

interface StreamState {
  readable?: ReadableStreamDefaultController<Uint8Array>;
  pending: Uint8Array[];
  ended: boolean;
  failed?: DialError;
  replies: number;
  /**
   * Settles at the stream's SYN_REPLY (or its failure). The kubelet's spdystream drops DATA for a
   * stream it has not replied to yet, so writes wait for it (client-go waits the same way).
   */
  replied: PromiseWithResolvers<void>;
  onReply?: () => void;
  onError?: (error: DialError) => void;
  onData?: () => void;
  /** The error stream ended (FIN or RST): the connection's outcome is known. */
  onEnd?: () => void;
}

/** An open session. */
export class SpdySession {
  readonly #ws: WebSocket;
  readonly #parser = new FrameParser();
  /** Outgoing header blocks; the replies' (empty) blocks are never read. */
  readonly #headers = new HeaderBlockEncoder();
  readonly #streams = new Map<number, StreamState>();
  #nextStream = 1;
  #nextRequest = 0;
  #closed = false;
  readonly #ping: ReturnType<typeof setInterval>;
  /** Smoothed time from SYN_STREAM to SYN_REPLY (starts at the upgrade's duration). */
  #rtt: number;
  /** A PING is out and not answered yet. */
  #pingOutstanding = false;
  #pingId = 1;
  #pingDeadline?: ReturnType<typeof setTimeout>;

  private constructor(ws: WebSocket, upgradeMs: number) {
    this.#ws = ws;
    this.#rtt = upgradeMs;
    ws.on("message", (data: Uint8Array, isBinary: boolean) => {
      if (!isBinary) return;
      try {
        for (const frame of this.#parser.push(new Uint8Array(data))) this.#onFrame(frame);
      } catch {
        ws.terminate();
      }
    });
    ws.on("close", () => this.#shutdown(new DialError("error", "the port-forward session closed")));
    ws.on("error", () => {});
    this.#ping = setInterval(() => this.#checkAlive(PING_INTERVAL_MS), PING_INTERVAL_MS);
  }

  /** Opens a session; rejects with {@link SpdyUnavailable} when the server does not tunnel SPDY. */
  static open(url: string, options: WebSocket.ClientOptions): Promise<SpdySession> {
    const started = performance.now();
    return new Promise((resolve, reject) => {
      // `ws` (like the WHATWG API) rejects "/" in a subprotocol token, but Kubernetes names the
      // tunnel "SPDY/3.1+portforward.k8s.io": send the header ourselves and take the server's
      // answer off the response before `ws` checks it (it then sees no subprotocol either way).
      let accepted = false;
      const ws = new WebSocket(url, {
        ...options,
        headers: {
          ...(options.headers as Record<string, string> | undefined),
          "Sec-WebSocket-Protocol": SPDY_TUNNEL_PROTOCOL,
        },
        finishRequest: (request) => {
          request.prependListener("upgrade", (response) => {
            accepted = response.headers["sec-websocket-protocol"] === SPDY_TUNNEL_PROTOCOL;
            delete response.headers["sec-websocket-protocol"];
          });
          request.end();
        },
      });
      ws.binaryType = "nodebuffer";
      ws.on("unexpected-response", (_req, res) => {
        const status = res.statusCode ?? 0;
        res.resume();
        if (status === 401 || status === 403) {
          reject(new DialError("forbidden", `port-forward upgrade failed with ${status}`));
        } else if (status === 404) {
          reject(
            new DialError("unreachable", "port-forward upgrade failed with 404 (no such pod)"),
          );
        } else reject(new SpdyUnavailable(`SPDY tunnel refused with ${status}`));
        ws.terminate();
      });
      ws.once("error", (error: Error) => {
        reject(
          /subprotocol/.test(error.message) ? new SpdyUnavailable(error.message) : new DialError(
            /timed out/i.test(error.message) ? "timeout" : "error",
            `port-forward connection: ${error.message}`,
          ),
        );
      });
      ws.once("open", () => {
        if (!accepted) {
          ws.terminate();
          reject(new SpdyUnavailable("the server did not accept the SPDY tunnel"));
        } else resolve(new SpdySession(ws, performance.now() - started));
      });
    });
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Opens a connection to `port` in the pod. With `early` the duplex is returned as soon as the
   * streams are requested (data may follow at once; the kubelet buffers it until its dial is
   * done) and `accepted` carries the verdict; otherwise the verdict is awaited first.
   */
  async openStream(port: number, signal: AbortSignal, early = false): Promise<Duplex> {
    if (this.#closed) throw new DialError("error", "the port-forward session is closed");
    const requestId = String(this.#nextRequest++);
    const errorId = this.#nextStream;
    const dataId = this.#nextStream + 2;
    this.#nextStream += 4;
    const state = (): StreamState => ({
      pending: [],
      ended: false,
      replies: 0,
      replied: Promise.withResolvers(),
    });
    const error = state();
    const data = state();
    this.#streams.set(errorId, error);
    this.#streams.set(dataId, data);
    const headers = (type: string): [string, string][] => [
      ["streamtype", type],
      ["port", String(port)],
      ["requestid", requestId],
    ];
    const accepted = this.#verdict(error, data, signal);
    accepted.catch(() => this.#reset(errorId, dataId));
    const synStream = (id: number, type: string) =>
      controlFrame(SYN_STREAM, 0, synStreamPayload(id, this.#headers.encode(headers(type))));
    this.#send(concat(synStream(errorId, "error"), synStream(dataId, "data")));
    if (!early) await accepted;
    const ws = this.#ws;
    return {
      readable: new ReadableStream<Uint8Array>({
        start: (controller) => {
          data.readable = controller;
          for (const chunk of data.pending.splice(0)) controller.enqueue(chunk);
          if (data.failed) controller.error(data.failed);
          else if (data.ended) controller.close();
        },
        cancel: () => this.#reset(errorId, dataId),
      }),
      writable: new WritableStream<Uint8Array>({
        write: async (chunk) => {
          await data.replied.promise;
          if (data.failed) throw data.failed;
          if (this.#closed) throw new DialError("error", "the port-forward session closed");
          for (let i = 0; i < chunk.length; i += MAX_FRAME) {
            this.#send(dataFrame(dataId, 0, chunk.subarray(i, i + MAX_FRAME)));
          }
          while (ws.bufferedAmount > SEND_HIGH_WATER && !this.#closed) {
            await new Promise((r) => setTimeout(r, 1));
          }
        },
        close: async () => {
          await data.replied.promise;
          this.#send(dataFrame(dataId, FLAG_FIN, new Uint8Array(0)));
        },
        abort: () => this.#reset(errorId, dataId),
      }),
      abort: () => this.#reset(errorId, dataId),
      accepted: early ? accepted : undefined,
    };
  }

  /**
   * The kubelet replies to both streams, then dials the pod port and reports a refusal on the
   * error stream right away (§3.2). The connection counts as accepted when the pod sends data,
   * or when about one more round trip after the replies passed without an error.
   */
  #verdict(error: StreamState, data: StreamState, signal: AbortSignal): Promise<void> {
    const sentAt = performance.now();
    return new Promise<void>((resolve, reject) => {
      let replies = 0;
      const limit = Math.max(STREAM_REPLY_TIMEOUT_MS, 4 * this.#rtt);
      const unanswered = setTimeout(() => {
        fail(new DialError("timeout", `the kubelet did not answer the stream within ${limit} ms`));
        this.#checkAlive(limit);
      }, limit);
      const replied = () => {
        if (++replies !== 2) return;
        clearTimeout(unanswered);
        const rtt = performance.now() - sentAt;
        this.#rtt = 0.8 * this.#rtt + 0.2 * rtt;
        setTimeout(resolve, Math.min(REFUSAL_GRACE_MS, Math.max(MIN_GRACE_MS, rtt)));
      };
      // Also after acceptance: error-stream text or a reset mid-connection ends the data stream
      // with an error (the app sees RST, never a clean end of truncated data).
      const fail = (failure: DialError) => {
        clearTimeout(unanswered);
        data.replied.resolve(); // waiting writes go on and meet the failure
        data.failed ??= failure;
        reject(failure);
        if (data.readable && !data.ended) {
          data.ended = true;
          data.readable.error(failure);
        }
      };
      error.onReply = replied;
      data.onReply = replied;
      error.onError = fail;
      data.onError = fail;
      data.onData = resolve;
      signal.addEventListener("abort", () => fail(new DialError("error", "dial aborted")), {
        once: true,
      });
    });
  }

  /** Ends the session (all its streams fail). */
  close(): void {
    this.#shutdown(new DialError("error", "the port-forward session was closed"));
    this.#ws.close(1000);
  }

  #onFrame(frame: ReturnType<FrameParser["push"]>[number]): void {
    if (frame.kind === "control") {
      if (frame.type === SYN_REPLY) {
        const state = this.#streams.get(payloadStreamId(frame.payload));
        state?.replied.resolve();
        state?.onReply?.();
      } else if (frame.type === PING) {
        // Our PINGs come back with odd ids; the server's own (even) are echoed (SPDY/3 §2.6.5).
        if (payloadStreamId(frame.payload) % 2 === 1) this.#pingOutstanding = false;
        else this.#send(controlFrame(PING, 0, frame.payload));
      } else if (frame.type === RST_STREAM) {
        const id = payloadStreamId(frame.payload);
        const state = this.#streams.get(id);
        // The kubelet resets the error stream after writing its text: the text already failed it.
        if (state && !state.failed) {
          state.onError?.(new DialError("error", "the pod side reset the stream"));
        }
        if (state) {
          state.ended = true;
          state.onEnd?.();
        }
        this.#streams.delete(id);
      }
      return;
    }
    const state = this.#streams.get(frame.streamId);
    if (!state) return;
    if (frame.data.length > 0) {
      if ((frame.streamId - 1) % 4 === 0) {
        // The error stream: its text means this connection failed (§3.2).
        const text = new TextDecoder().decode(frame.data);
        const refused = /refused|forward not found|no forward found/i.test(text);
        state.failed = new DialError(refused ? "refused" : "error", text);
        state.onError?.(state.failed);
      } else {
        state.onData?.();
        if (state.readable) state.readable.enqueue(new Uint8Array(frame.data));
        else state.pending.push(new Uint8Array(frame.data));
      }
    }
    if (frame.flags & FLAG_FIN) this.#onFin(frame.streamId, state);
  }

  /**
   * The data stream's FIN may come before the error stream's text (kwok writes it first on a
   * failed dial, kubernetes.md §3.2), so the app's stream ends cleanly only once the error stream
   * has ended without text; a missing error-stream end is waited for at most ERROR_END_WAIT_MS.
   */
  #onFin(streamId: number, state: StreamState): void {
    const isError = (streamId - 1) % 4 === 0;
    if (isError) {
      state.ended = true;
      state.onEnd?.();
      return;
    }
    const errorState = this.#streams.get(streamId - 2);
    const end = () => {
      if (state.ended) return;
      state.ended = true;
      state.readable?.close();
    };
    if (!errorState || errorState.ended) return end();
    const timer = setTimeout(end, ERROR_END_WAIT_MS);
    errorState.onEnd = () => {
      clearTimeout(timer);
      end();
    };
  }

  /**
   * Liveness: a PING unanswered within `timeoutMs` means the session is dead (a laptop that
   * slept, a NAT that forgot us): end it, so its connections fail at once and the next dial opens
   * a new one. One probe at a time.
   */
  #checkAlive(timeoutMs: number): void {
    if (this.#closed || this.#pingOutstanding) return;
    this.#pingOutstanding = true;
    const id = (this.#pingId += 2); // client-initiated PING ids are odd (SPDY/3 §2.6.5)
    this.#send(controlFrame(PING, 0, new Uint8Array([id >>> 24, id >>> 16, id >>> 8, id])));
    clearTimeout(this.#pingDeadline);
    this.#pingDeadline = setTimeout(() => {
      if (this.#pingOutstanding && !this.#closed) this.#ws.terminate();
    }, timeoutMs);
  }

  #reset(...ids: number[]): void {
    for (const id of ids) {
      if (!this.#streams.has(id)) continue;
      this.#streams.delete(id);
      this.#send(controlFrame(RST_STREAM, 0, rstStreamPayload(id, RST_CANCEL)));
    }
  }

  #send(bytes: Uint8Array): void {
    if (!this.#closed && this.#ws.readyState === WebSocket.OPEN) this.#ws.send(bytes);
  }

  #shutdown(error: DialError): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#ping);
    clearTimeout(this.#pingDeadline);
    for (const state of this.#streams.values()) {
      state.onError?.(error);
      if (state.readable && !state.ended) {
        state.ended = true;
        try {
          state.readable.error(error);
        } catch {
          // already closed
        }
      }
    }
    this.#streams.clear();
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
