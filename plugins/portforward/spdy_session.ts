/**
 * One SPDY/3.1 port-forward session to a pod, tunnelled over a WebSocket (KEP-4006, the default
 * since Kubernetes 1.31; kubernetes.md §3) or over a direct `Upgrade: SPDY/3.1` (before 1.31, and
 * through proxies that strip WebSocket upgrades): each connection is an error+data stream pair, so
 * a new connection costs two SYN_STREAMs on an open link instead of TLS + upgrade + authorisation.
 * The data stream half-closes with FIN (unlike v4); one stream's failure never ends the session.
 */
import type { Duplex as NodeDuplex } from "node:stream";
// @ts-types="@types/ws"
import WebSocket from "ws";
import { DialError, type Duplex } from "../../mod.ts";
import {
  controlFrame,
  DEFAULT_WINDOW,
  FLAG_FIN,
  FrameParser,
  MAX_WINDOW,
  parseSettings,
  payloadStreamId,
  payloadWord,
  PING,
  RST_CANCEL,
  RST_FLOW_CONTROL_ERROR,
  RST_STREAM,
  rstStreamPayload,
  SETTINGS,
  SETTINGS_INITIAL_WINDOW_SIZE,
  settingsPayload,
  SpdyFramingError,
  SYN_REPLY,
  SYN_STREAM,
  synStreamPayload,
  WINDOW_UPDATE,
  windowUpdatePayload,
  writeDataFrameHeader,
} from "../../core/k8s/spdy/frames.ts";
import { type SessionLink, socketLink, webSocketLink } from "./session_link.ts";
import { upgradeRefusal, UpgradeRefused, upgradeToSpdy } from "./spdy_upgrade.ts";
import { HeaderBlockEncoder } from "../../core/k8s/spdy/headers.ts";
import { ReceiveWindow } from "../../core/k8s/spdy/receive_window.ts";
import { LinkLiveness, type LivenessOptions } from "./link_liveness.ts";
import { MAX_MESSAGE, SEND_HIGH_WATER, SESSION_HIGH_WATER, STREAM_HIGH_WATER } from "./limits.ts";

/** The tunnelled subprotocol. */
export const SPDY_TUNNEL_PROTOCOL = "SPDY/3.1+portforward.k8s.io";
const REFUSAL_GRACE_MS = 40;
const MIN_GRACE_MS = 1;
const MAX_FRAME = 32 * 1024;
/**
 * The kubelet replies to a SYN_STREAM before it dials (§3.2), so a reply that takes longer than
 * this (or four round trips, if that is more) means the far side is wedged: the connection fails
 * as a timeout instead of hanging, and a PING checks whether the whole session is.
 */
const STREAM_REPLY_TIMEOUT_MS = 1_500;
/** A timer this late (ms) fired on a thread that was too busy to read what arrived meanwhile. */
const LATE_TIMER_MS = 200;
const ERROR_END_WAIT_MS = 1_000;

/** The upgrade was refused (not 101 or not our subprotocol): fall back to the next transport. */
export { UpgradeRefused as SpdyUnavailable };

interface StreamState {
  /** The app's readable (data streams only). */
  readable?: ReadableStreamDefaultController<Uint8Array>;
  ended: boolean;
  failed?: DialError;
  /**
   * Settles at the stream's SYN_REPLY (or its failure). The kubelet's spdystream drops DATA for a
   * stream it has not replied to yet, so writes wait for it (client-go waits the same way).
   */
  replied: PromiseWithResolvers<void>;
  /** Bytes handed to the readable, and how many of them the app has read so far. */
  enqueued: number;
  read: number;
  /** What the peer may still send on this stream. */
  receive: ReceiveWindow;
  /** What the peer lets us send on this stream (obeyed once it shows it does flow control). */
  sendWindow: number;
  onReply?: () => void;
  onError?: (error: DialError) => void;
  onData?: () => void;
  /** The error stream ended (FIN or RST): the connection's outcome is known. */
  onEnd?: () => void;
  /** We sent FIN on this data stream (the app closed its writable). */
  finSent?: boolean;
}

/**
 * An open session.
 *
 * Flow control (SPDY/3.1 §2.6.8): we advertise a {@link STREAM_HIGH_WATER} window per stream and a
 * {@link SESSION_HIGH_WATER} window for the session, and return bytes with WINDOW_UPDATE only as
 * the app reads them. Kubernetes' spdystream (kubelet, CRI streaming servers) neither sends nor
 * honours WINDOW_UPDATE — its own backpressure is to stop reading the connection — so:
 * - a peer that has not shown flow control (no WINDOW_UPDATE or initial-window SETTINGS yet) is
 *   held back the same way: while a stream's unread bytes reach its high-water mark, or the
 *   session's reach the session's, the session stops reading the WebSocket (every stream of the
 *   session waits, as with kubectl). Its windows are not enforced, and ours are not waited for:
 *   an upload would otherwise stall for good after 64 KiB.
 * - a peer that has shown it is held to its windows: sending past a stream's window resets that
 *   stream with FLOW_CONTROL_ERROR (the session goes on), past the session's ends the session;
 *   our writes wait for the windows it opens.
 */
export class SpdySession {
  readonly #link: SessionLink;
  /** A data frame's SPDY header, reused: the link copies it into each frame it sends. */
  readonly #dataHeader = new Uint8Array(8);
  /** Pushed the link's received chunks, which nothing changes afterwards. */
  readonly #parser = new FrameParser(undefined, { viewInput: true });
  /** Outgoing header blocks; the replies' (empty) blocks are never read. */
  readonly #headers = new HeaderBlockEncoder();
  readonly #streams = new Map<number, StreamState>();
  #nextStream = 1;
  #nextRequest = 0;
  #closed = false;
  readonly #liveness: LinkLiveness;
  /** The machine slept since this session opened: new connections go to a new session. */
  #suspect = false;
  /** Smoothed time from SYN_STREAM to SYN_REPLY (starts at the upgrade's duration). */
  #rtt: number;
  #pingId = 1;
  /** The peer sent WINDOW_UPDATE or an initial-window SETTINGS: it does flow control. */
  #peerFlowControl = false;
  /** The peer's initial stream window (SETTINGS, §2.6.4), for streams opened from now on. */
  #peerInitialWindow = DEFAULT_WINDOW;
  /** What the peer lets us send on the session. */
  #sendWindow = DEFAULT_WINDOW;
  /** Settles (and is replaced) whenever a send window opens or a stream fails: writers re-check. */
  #windowChange = Promise.withResolvers<void>();
  readonly #sessionReceive = new ReceiveWindow(SESSION_HIGH_WATER);
  /** Bytes in the app's readables not read yet, over all streams. */
  #buffered = 0;
  /** Data streams whose unread bytes reached the high-water mark. */
  readonly #full = new Set<number>();
  /** Reading the WebSocket is paused (backpressure towards the API server). */
  #paused = false;

  private constructor(link: SessionLink, upgradeMs: number, liveness: LivenessOptions) {
    this.#link = link;
    this.#rtt = upgradeMs;
    this.#liveness = new LinkLiveness({
      // Client-initiated PING ids are odd (SPDY/3.1 §2.6.5).
      ping: () => this.#send(controlFrame(PING, 0, payloadOf(this.#pingId += 2))),
      dead: (silentMs) => {
        this.#shutdown(
          new DialError(
            "timeout",
            `the API server stopped answering (nothing for ${
              Math.round(silentMs / 1000)
            } s, PINGs unanswered): the port-forward session was closed; new connections open ` +
              "a new one",
          ),
        );
        link.terminate();
      },
      suspended: () => {
        // The streams stay while the PING the state machine sends next is answered.
        this.#suspect = true;
        this.#closeIfDrained();
      },
      paused: () => this.#paused,
    }, liveness);
    link.listen({
      heard: () => this.#liveness.heard(),
      bytes: (bytes) => {
        if (this.#closed) return;
        try {
          for (const frame of this.#parser.push(bytes)) this.#onFrame(frame);
        } catch (error) {
          const reason = error instanceof SpdyFramingError ? error.message : String(error);
          this.#shutdown(new DialError("error", `the port-forward session broke: ${reason}`));
          link.terminate();
        }
      },
      closed: () => this.#shutdown(new DialError("error", "the port-forward session closed")),
    });
    // Our windows (§2.6.4, §2.6.8): a stream's initial one by SETTINGS, the session's (64 KiB
    // until told otherwise) by a WINDOW_UPDATE for stream 0. spdystream reads and ignores both.
    this.#send(controlFrame(
      SETTINGS,
      0,
      settingsPayload([[SETTINGS_INITIAL_WINDOW_SIZE, STREAM_HIGH_WATER]]),
    ));
    this.#credit(0, SESSION_HIGH_WATER - DEFAULT_WINDOW);
  }

  /** Opens a session; rejects with {@link SpdyUnavailable} when the server does not tunnel SPDY. */
  static open(
    url: string,
    options: WebSocket.ClientOptions,
    liveness: LivenessOptions = {},
  ): Promise<SpdySession> {
    const started = performance.now();
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
        } else {
          resolve(
            new SpdySession(webSocketLink(ws, socket), performance.now() - started, liveness),
          );
        }
      });
    });
  }

  /**
   * Opens a session with a direct `Upgrade: SPDY/3.1` (`url` is https:// or http://); rejects
   * with {@link SpdyUnavailable} when the server (or a proxy) does not switch.
   */
  static async openDirect(
    url: string,
    options: WebSocket.ClientOptions,
    liveness: LivenessOptions = {},
  ): Promise<SpdySession> {
    const started = performance.now();
    const { socket, head } = await upgradeToSpdy(url, options);
    (socket as NodeDuplex & { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
    return new SpdySession(socketLink(socket, head), performance.now() - started, liveness);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * New connections may use this session: it is open and the machine has not slept since it
   * opened (after a suspend its connection may be dead without a sign; a new session is cheap).
   */
  get reusable(): boolean {
    return !this.#closed && !this.#suspect;
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
      ended: false,
      replied: Promise.withResolvers(),
      enqueued: 0,
      read: 0,
      receive: new ReceiveWindow(STREAM_HIGH_WATER),
      sendWindow: this.#peerInitialWindow,
    });
    const error = state();
    const data = state();
    this.#streams.set(errorId, error);
    this.#streams.set(dataId, data);
    // Bytes that arrive before the verdict already count against the stream's high-water mark.
    const readable = new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          data.readable = controller;
        },
        pull: () => this.#onRead(dataId, data),
        cancel: () => this.#reset(errorId, dataId),
      },
      new ByteLengthQueuingStrategy({ highWaterMark: STREAM_HIGH_WATER }),
    );
    const headers = (type: string): [string, string][] => [
      ["streamtype", type],
      ["port", String(port)],
      ["requestid", requestId],
    ];
    const accepted = this.#verdict(error, dataId, data, signal);
    accepted.catch(() => this.#reset(errorId, dataId));
    const synStream = (id: number, type: string) =>
      controlFrame(SYN_STREAM, 0, synStreamPayload(id, this.#headers.encode(headers(type))));
    this.#send(concat(synStream(errorId, "error"), synStream(dataId, "data")));
    if (!early) await accepted;
    return {
      readable,
      writable: new WritableStream<Uint8Array>({
        write: async (chunk) => {
          await data.replied.promise;
          await this.#write(dataId, data, chunk);
        },
        close: async () => {
          await data.replied.promise;
          this.#sendData(dataId, FLAG_FIN, new Uint8Array(0));
          data.finSent = true;
          this.#forgetIfDone(dataId);
        },
        abort: () => this.#reset(errorId, dataId),
      }),
      abort: () => this.#reset(errorId, dataId),
      accepted: early ? accepted : undefined,
    };
  }

  /** Bytes received for the apps' readables and not read by them yet (all streams). */
  get bufferedBytes(): number {
    return this.#buffered;
  }

  /**
   * Sends `chunk` on a data stream in frames of at most MAX_FRAME, within the peer's windows when
   * it does flow control, then waits while the socket holds more than SEND_HIGH_WATER: what waits
   * is the app's write, so an API server that does not read (or opens no window) holds at most
   * that much of ours.
   */
  async #write(id: number, state: StreamState, chunk: Uint8Array): Promise<void> {
    for (let offset = 0; offset < chunk.length;) {
      if (state.failed) throw state.failed;
      if (this.#closed) throw new DialError("error", "the port-forward session closed");
      const room = this.#peerFlowControl ? Math.min(state.sendWindow, this.#sendWindow) : Infinity;
      if (room <= 0) {
        await this.#windowChange.promise;
        continue;
      }
      const n = Math.min(MAX_FRAME, chunk.length - offset, room);
      state.sendWindow -= n;
      this.#sendWindow -= n;
      this.#sendData(id, 0, chunk.subarray(offset, offset + n));
      offset += n;
    }
    while (this.#link.bufferedAmount > SEND_HIGH_WATER && !this.#closed) {
      await new Promise((r) => setTimeout(r, 1));
    }
  }

  /**
   * The kubelet replies to both streams, then dials the pod port and reports a refusal on the
   * error stream right away (§3.2). The connection counts as accepted when the pod sends data,
   * or when about one more round trip after the replies passed without an error.
   */
  #verdict(
    error: StreamState,
    dataId: number,
    data: StreamState,
    signal: AbortSignal,
  ): Promise<void> {
    const sentAt = performance.now();
    return new Promise<void>((resolve, reject) => {
      let replies = 0;
      const limit = Math.max(STREAM_REPLY_TIMEOUT_MS, 4 * this.#rtt);
      let due = sentAt + limit;
      const expire = () => {
        // A timer that fires late means this thread was busy (a flood, a burst of work): the
        // reply may be waiting unread in the socket. Give it one more limit before failing.
        if (performance.now() - due > LATE_TIMER_MS && due === sentAt + limit) {
          due = performance.now() + limit;
          unanswered = setTimeout(expire, limit);
          return;
        }
        fail(new DialError("timeout", `the kubelet did not answer the stream within ${limit} ms`));
        this.#liveness.probe(limit);
      };
      let unanswered = setTimeout(expire, limit);
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
        reject(failure);
        this.#failData(dataId, data, failure);
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
    this.#link.close();
  }

  #onFrame(frame: ReturnType<FrameParser["push"]>[number]): void {
    if (frame.kind === "control") return this.#onControl(frame.type, frame.payload);
    const n = frame.data.length;
    if (!this.#sessionReceive.receive(n) && this.#peerFlowControl) {
      throw new SpdyFramingError(
        "the API server sent past the session's flow-control window (SPDY/3.1 §2.6.8)",
      );
    }
    const state = this.#streams.get(frame.streamId);
    const isError = (frame.streamId - 1) % 4 === 0;
    if (!state || isError || state.ended) {
      // Bytes no app will read (error-stream text, a stream already ended or reset) are
      // consumed here: the session window gets them back at once.
      this.#credit(0, this.#sessionReceive.read(n));
    }
    if (!state) return;
    if (n > 0 && isError) {
      // The error stream: its text means this connection failed (§3.2).
      const text = new TextDecoder().decode(frame.data);
      const refused = /refused|forward not found|no forward found/i.test(text);
      state.failed = new DialError(refused ? "refused" : "error", text);
      state.onError?.(state.failed);
    } else if (n > 0 && !state.ended) {
      if (!state.receive.receive(n) && this.#peerFlowControl) {
        return this.#flowControlError(frame.streamId, state);
      }
      state.onData?.();
      state.readable!.enqueue(frame.data);
      state.enqueued += n;
      this.#buffered += n;
      if ((state.readable!.desiredSize ?? 0) <= 0) this.#full.add(frame.streamId);
      this.#applyBackpressure();
    }
    if (frame.flags & FLAG_FIN) this.#onFin(frame.streamId, state);
  }

  #onControl(type: number, payload: Uint8Array): void {
    if (type === SYN_REPLY) {
      const state = this.#streams.get(payloadStreamId(payload));
      state?.replied.resolve();
      state?.onReply?.();
    } else if (type === PING) {
      // Our PINGs come back with odd ids; the server's own (even) are echoed (SPDY/3 §2.6.5).
      if (payloadStreamId(payload) % 2 === 0) this.#send(controlFrame(PING, 0, payload));
    } else if (type === RST_STREAM) {
      const id = payloadStreamId(payload);
      const state = this.#streams.get(id);
      this.#streams.delete(id);
      if (!state) return;
      // The kubelet resets the error stream after writing its text: the text already failed it.
      if (!state.failed) state.onError?.(new DialError("error", "the pod side reset the stream"));
      state.ended = true;
      this.#release(id, state);
      state.onEnd?.();
      this.#forgetIfDone(id % 4 === 1 ? id + 2 : id);
    } else if (type === SETTINGS) {
      const initial = parseSettings(payload).get(SETTINGS_INITIAL_WINDOW_SIZE);
      if (initial === undefined) return;
      if (initial > MAX_WINDOW) {
        throw new SpdyFramingError(`SETTINGS initial window ${initial} is over 2^31 - 1`);
      }
      // A changed initial window moves every open stream's window by the difference (§2.6.4).
      for (const state of this.#streams.values()) {
        state.sendWindow += initial - this.#peerInitialWindow;
      }
      this.#peerInitialWindow = initial;
      this.#onPeerFlowControl();
    } else if (type === WINDOW_UPDATE) {
      const id = payloadWord(payload, 0);
      const delta = payloadWord(payload, 1);
      if (id === 0) {
        this.#sendWindow += delta;
        if (this.#sendWindow > MAX_WINDOW) {
          throw new SpdyFramingError("the session's send window grew past 2^31 - 1 (§2.6.8)");
        }
      } else {
        const state = this.#streams.get(id);
        if (state) state.sendWindow += delta;
        if (state && state.sendWindow > MAX_WINDOW) return this.#flowControlError(id, state);
      }
      this.#onPeerFlowControl();
    }
  }

  /** The peer does flow control: its windows now bound what it sends and what we send. */
  #onPeerFlowControl(): void {
    this.#peerFlowControl = true;
    this.#windowOpened();
    this.#applyBackpressure();
  }

  /**
   * The peer broke a stream's window (sent past it, or opened ours past 2^31 - 1): that stream is
   * reset with FLOW_CONTROL_ERROR (§2.6.8) and fails; the session and its other streams go on.
   */
  #flowControlError(dataId: number, state: StreamState): void {
    this.#streams.delete(dataId);
    this.#send(controlFrame(RST_STREAM, 0, rstStreamPayload(dataId, RST_FLOW_CONTROL_ERROR)));
    this.#reset(dataId - 2);
    this.#failData(
      dataId,
      state,
      new DialError(
        "error",
        "the API server broke the connection's flow-control window (SPDY/3.1 §2.6.8): " +
          "the connection was reset",
      ),
    );
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
      this.#forgetIfDone(streamId + 2);
      return;
    }
    const errorState = this.#streams.get(streamId - 2);
    const end = () => {
      if (state.ended) return;
      state.ended = true;
      state.readable?.close();
      this.#release(streamId, state);
      this.#forgetIfDone(streamId);
    };
    if (!errorState || errorState.ended) return end();
    const timer = setTimeout(end, ERROR_END_WAIT_MS);
    errorState.onEnd = () => {
      clearTimeout(timer);
      end();
    };
  }

  /**
   * The app read from a data stream (the readable's pull: its queue fell below the high-water
   * mark): what it read goes back to the peer as window, and the session may read again.
   */
  #onRead(id: number, state: StreamState): void {
    if (state.ended || !state.readable) return;
    const queued = STREAM_HIGH_WATER - (state.readable.desiredSize ?? 0);
    const read = state.enqueued - queued;
    if (read > state.read) {
      const n = read - state.read;
      state.read = read;
      this.#buffered -= n;
      this.#credit(id, state.receive.read(n));
      this.#credit(0, this.#sessionReceive.read(n));
    }
    // Resume at half the mark, so a reader just below it does not pause and resume per message.
    if (queued <= STREAM_HIGH_WATER / 2) this.#full.delete(id);
    this.#applyBackpressure();
  }

  /** Sends a WINDOW_UPDATE returning `delta` bytes of window (nothing for 0). */
  #credit(id: number, delta: number): void {
    if (delta > 0) this.#send(controlFrame(WINDOW_UPDATE, 0, windowUpdatePayload(id, delta)));
  }

  /**
   * Pauses reading the WebSocket while the apps hold too much unread: for a peer without flow
   * control while any stream is at its mark, for any peer while the session is at its mark.
   */
  #applyBackpressure(): void {
    const hold = (!this.#peerFlowControl && this.#full.size > 0) ||
      this.#buffered >= SESSION_HIGH_WATER;
    if (hold === this.#paused || this.#closed) return;
    this.#paused = hold;
    if (hold) this.#link.pause();
    else this.#link.resume();
  }

  /** A data stream no longer counts towards the session's unread bytes (ended, failed, reset). */
  #release(id: number, state: StreamState): void {
    this.#buffered -= state.enqueued - state.read;
    state.read = state.enqueued;
    this.#full.delete(id);
    this.#applyBackpressure();
  }

  /** Fails a data stream: its readable errors, waiting writes meet the failure. */
  #failData(id: number, state: StreamState, failure: DialError): void {
    state.replied.resolve();
    state.failed ??= failure;
    if (state.readable && !state.ended) {
      state.ended = true;
      try {
        state.readable.error(state.failed);
      } catch {
        // cancelled by the app already
      }
    }
    this.#release(id, state);
    this.#windowOpened();
  }

  #windowOpened(): void {
    this.#windowChange.resolve();
    this.#windowChange = Promise.withResolvers();
  }

  /**
   * Forgets a connection whose data stream ended both ways and whose error stream ended (a
   * long-lived session would otherwise keep every connection it ever carried).
   */
  #forgetIfDone(dataId: number): void {
    const data = this.#streams.get(dataId);
    const error = this.#streams.get(dataId - 2);
    if ((data && !(data.ended && data.finSent)) || (error && !error.ended)) return;
    this.#streams.delete(dataId);
    this.#streams.delete(dataId - 2);
    this.#closeIfDrained();
  }

  /** A suspect session (see {@link reusable}) ends once its last connection has. */
  #closeIfDrained(): void {
    if (this.#suspect && this.#streams.size === 0 && !this.#closed) this.close();
  }

  /** Resets our streams (CANCEL); a data stream's readable and writes fail. */
  #reset(...ids: number[]): void {
    for (const id of ids) {
      const state = this.#streams.get(id);
      if (!state) continue;
      this.#streams.delete(id);
      this.#send(controlFrame(RST_STREAM, 0, rstStreamPayload(id, RST_CANCEL)));
      if (state.readable) this.#failData(id, state, new DialError("error", "connection reset"));
    }
    this.#closeIfDrained();
  }

  #send(bytes: Uint8Array): void {
    if (!this.#closed && this.#link.open) this.#link.send(bytes);
  }

  /** Sends a data frame (header and body copied into one frame by the link). */
  #sendData(id: number, flags: number, data: Uint8Array): void {
    if (this.#closed || !this.#link.open) return;
    writeDataFrameHeader(this.#dataHeader, id, flags, data.length);
    this.#link.sendData(this.#dataHeader, data);
  }

  #shutdown(error: DialError): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#liveness.stop();
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
    this.#full.clear();
    this.#buffered = 0;
    this.#windowOpened();
  }
}

function payloadOf(word: number): Uint8Array {
  return new Uint8Array([word >>> 24, word >>> 16, word >>> 8, word]);
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
