/**
 * The client side of one SPDY/3.1 session (SPDY/3.1 §2): a stream table over one link, frames
 * in and out, PING, RST_STREAM, FIN, and flow control with backpressure both ways. It knows
 * nothing of what its streams carry: port-forward's error/data pairs are its user's
 * (plugins/portforward/forward_session.ts), as client-go's portforward.go sits on spdystream.
 *
 * Flow control (SPDY/3.1 §2.6.8): we advertise `streamWindow` per stream and `sessionWindow` for
 * the session, and return bytes with WINDOW_UPDATE only as the readables are read. Kubernetes'
 * spdystream (kubelet, CRI streaming servers) neither sends nor honours WINDOW_UPDATE — its own
 * backpressure is to stop reading the connection — so:
 * - a peer that has not shown flow control (no WINDOW_UPDATE or initial-window SETTINGS yet) is
 *   held back the same way: while a stream's unread bytes reach its high-water mark, or the
 *   session's reach the session's, the session stops reading the link (every stream waits, as
 *   with kubectl). Its windows are not enforced, and ours are not waited for: an upload would
 *   otherwise stall for good after 64 KiB.
 * - a peer that has shown it is held to its windows: sending past a stream's window resets that
 *   stream with FLOW_CONTROL_ERROR (the session goes on), past the session's ends the session;
 *   our writes wait for the windows it opens.
 * See docs/portforward.md §6.
 */
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
} from "./frames.ts";
import { HeaderBlockEncoder } from "./headers.ts";
import { ReceiveWindow } from "./receive_window.ts";
import { type SessionFailures, type SpdyLink, SpdyStream, type StreamSpec } from "./stream.ts";
import { concatBytes } from "../../stream/concat_bytes.ts";

export { SpdyStream };
export type { SessionFailures, SpdyLink, StreamHandlers, StreamSpec } from "./stream.ts";

/** How a session is sized and what it tells its user. */
export interface SpdySessionOptions {
  /** The receive window advertised per stream, and a readable's high-water mark (bytes). */
  streamWindow: number;
  /** Unread bytes over all readables before the session stops reading the link. */
  sessionWindow: number;
  /** A write waits while the link holds more than this unsent. */
  sendHighWater: number;
  /** The largest data frame sent (bytes). */
  maxDataFrame: number;
  /** The errors the session's failures become (the user's type). */
  failures: SessionFailures;
  /** Anything arrived from the peer. */
  heard?(): void;
  /** The session ended (once), with the error its streams failed with. */
  ended?(error: Error): void;
  /** The last open stream was forgotten. */
  idle?(): void;
}

/**
 * PINGs awaited at once: keepalives and deadline checks (one per overdue connection) past this
 * stop being awaited, oldest first.
 */
const MAX_UNECHOED = 64;

/** A session over a link; see the module comment. */
export class SpdySession {
  readonly #link: SpdyLink;
  readonly #options: SpdySessionOptions;
  /** A data frame's SPDY header, reused: the link copies it into each frame it sends. */
  readonly #dataHeader = new Uint8Array(8);
  /** Pushed the link's received chunks, which nothing changes afterwards. */
  readonly #parser = new FrameParser(undefined, { viewInput: true, streamData: true });
  /** Outgoing header blocks; the replies' (empty) blocks are never read. */
  readonly #headers = new HeaderBlockEncoder();
  readonly #streams = new Map<number, SpdyStream>();
  #nextStream = 1;
  #pingId = 1;
  /** Our PINGs not echoed yet, oldest first: id → what waits for the echo. */
  readonly #unechoed = new Map<number, () => void>();
  #closed = false;
  /** The peer sent WINDOW_UPDATE or an initial-window SETTINGS: it does flow control. */
  #peerFlowControl = false;
  /** The peer's initial stream window (SETTINGS, §2.6.4), for streams opened from now on. */
  #peerInitialWindow = DEFAULT_WINDOW;
  /** What the peer lets us send on the session. */
  #sendWindow = DEFAULT_WINDOW;
  /** Settles (and is replaced) whenever a send window opens or a stream fails: writers re-check. */
  #windowChange = Promise.withResolvers<void>();
  /** What the peer may still send on the session, re-opened as the readables are read. */
  readonly #sessionReceive: ReceiveWindow;
  /** Bytes in the readables not read yet, over all streams. */
  #buffered = 0;
  /** Streams whose unread bytes reached the high-water mark. */
  readonly #full = new Set<SpdyStream>();
  /** Reading the link is paused (backpressure towards the peer). */
  #paused = false;

  constructor(link: SpdyLink, options: SpdySessionOptions) {
    this.#link = link;
    this.#options = options;
    this.#sessionReceive = new ReceiveWindow(options.sessionWindow);
    link.listen({
      heard: () => options.heard?.(),
      bytes: (bytes) => {
        if (this.#closed) return;
        try {
          for (const frame of this.#parser.push(bytes)) this.#onFrame(frame);
        } catch (error) {
          const reason = error instanceof SpdyFramingError ? error.message : String(error);
          this.terminate(options.failures.broken(reason));
        }
      },
      closed: () => this.#shutdown(options.failures.closed()),
    });
    // Our windows (§2.6.4, §2.6.8): a stream's initial one by SETTINGS, the session's (64 KiB
    // until told otherwise) by a WINDOW_UPDATE for stream 0. spdystream reads and ignores both.
    this.#send(controlFrame(
      SETTINGS,
      0,
      settingsPayload([[SETTINGS_INITIAL_WINDOW_SIZE, options.streamWindow]]),
    ));
    this.#credit(0, options.sessionWindow - DEFAULT_WINDOW);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Reading the link is paused for backpressure (replies cannot be heard meanwhile). */
  get readingPaused(): boolean {
    return this.#paused;
  }

  /** Bytes received for the readables and not read yet (all streams). */
  get bufferedBytes(): number {
    return this.#buffered;
  }

  /** Streams not forgotten yet. */
  get openStreams(): number {
    return this.#streams.size;
  }

  /**
   * Opens streams with SYN_STREAM (§2.6.1), their frames written together, with the next odd
   * ids in order.
   */
  open(specs: StreamSpec[]): SpdyStream[] {
    if (this.#closed) throw this.#options.failures.closed();
    const streams = specs.map((spec) => {
      const stream = new SpdyStream(this.#nextStream, spec, this.#peerInitialWindow, {
        read: (s) => this.#onRead(s),
        write: (s, chunk) => this.#write(s, chunk),
        finish: (s) => this.#finish(s),
        reset: (s) => this.#reset(s),
        fail: (s, error) => this.#fail(s, error),
        endReadable: (s) => this.#endReadable(s),
      }, this.#options.streamWindow);
      this.#nextStream += 2;
      this.#streams.set(stream.id, stream);
      return stream;
    });
    const frames = streams.map((stream, i) =>
      controlFrame(
        SYN_STREAM,
        0,
        synStreamPayload(stream.id, this.#headers.encode(specs[i].headers)),
      )
    );
    this.#send(frames.length === 1 ? frames[0] : concatBytes(frames));
    return streams;
  }

  /**
   * Sends a PING (§2.6.5; the client's ids are odd). Resolves when its echo is read — after
   * every frame the peer sent before echoing it — and never if the session ends first, or if
   * more than {@link MAX_UNECHOED} later PINGs are out (a peer that does not echo holds no
   * memory). Any echo counts as heard.
   */
  ping(): Promise<void> {
    const id = this.#pingId += 2;
    const echoed = new Promise<void>((resolve) => this.#unechoed.set(id, resolve));
    if (this.#unechoed.size > MAX_UNECHOED) {
      this.#unechoed.delete(this.#unechoed.keys().next().value!);
    }
    this.#send(controlFrame(PING, 0, wordBytes(id)));
    return echoed;
  }

  /** Ends the session politely; its streams fail with `error`. */
  close(error: Error): void {
    this.#shutdown(error);
    this.#link.close();
  }

  /** Ends the session and drops the link at once; its streams fail with `error`. */
  terminate(error: Error): void {
    this.#shutdown(error);
    this.#link.terminate();
  }

  #onFrame(frame: ReturnType<FrameParser["push"]>[number]): void {
    if (frame.kind === "control") return this.#onControl(frame.type, frame.payload);
    const n = frame.data.length;
    if (!this.#sessionReceive.receive(n) && this.#peerFlowControl) {
      throw new SpdyFramingError(
        "the peer sent past the session's flow-control window (SPDY/3.1 §2.6.8)",
      );
    }
    const stream = this.#streams.get(frame.streamId);
    if (!stream || !stream.readable || stream.ended) {
      // Bytes no readable will hold (a handler's, a stream already ended or reset) are consumed
      // here: the session window gets them back at once.
      this.#creditSession(n);
    }
    if (!stream) return;
    if (n > 0 && !stream.readable) {
      // A handler hears whole frames (an error stream's text is parsed as a whole).
      const whole = stream.assemble(frame.data, frame.more === true);
      if (whole) stream.handlers.received?.(whole);
    } else if (n > 0 && !stream.ended) {
      if (!stream.receive(n) && this.#peerFlowControl) return this.#flowControlError(stream);
      stream.handlers.received?.(frame.data);
      if (stream.enqueue(frame.data)) this.#full.add(stream);
      this.#buffered += n;
      this.#applyBackpressure();
    }
    if (frame.flags & FLAG_FIN) this.#onFin(stream);
  }

  #onControl(type: number, payload: Uint8Array): void {
    if (type === SYN_REPLY) {
      this.#streams.get(payloadStreamId(payload))?.onReply();
    } else if (type === PING) {
      // Our PINGs come back with odd ids; the server's own (even) are echoed (§2.6.5) — unless
      // the link holds more than a write may wait for: a peer that sends PINGs and reads nothing
      // would otherwise make the echoes pile up here without bound.
      const id = payloadStreamId(payload);
      if (id % 2 === 0) {
        if (this.#link.bufferedAmount <= this.#options.sendHighWater) {
          this.#send(controlFrame(PING, 0, payload));
        }
      } else {
        this.#unechoed.get(id)?.();
        this.#unechoed.delete(id);
      }
    } else if (type === RST_STREAM) {
      const stream = this.#streams.get(payloadStreamId(payload));
      if (stream) this.#lose(stream, this.#options.failures.peerReset());
    } else if (type === SETTINGS) {
      const initial = parseSettings(payload).get(SETTINGS_INITIAL_WINDOW_SIZE);
      if (initial === undefined) return;
      if (initial > MAX_WINDOW) {
        throw new SpdyFramingError(`SETTINGS initial window ${initial} is over 2^31 - 1`);
      }
      // A changed initial window moves every open stream's window by the difference (§2.6.4).
      for (const stream of this.#streams.values()) {
        stream.sendWindow += initial - this.#peerInitialWindow;
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
        const stream = this.#streams.get(id);
        if (stream) stream.sendWindow += delta;
        if (stream && stream.sendWindow > MAX_WINDOW) return this.#flowControlError(stream);
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
  #flowControlError(stream: SpdyStream): void {
    this.#send(controlFrame(RST_STREAM, 0, rstStreamPayload(stream.id, RST_FLOW_CONTROL_ERROR)));
    this.#lose(stream, this.#options.failures.streamFlowControl());
  }

  /** A stream the peer reset or broke is gone: its user hears why, then its readable fails. */
  #lose(stream: SpdyStream, error: Error): void {
    this.#streams.delete(stream.id);
    if (!stream.failed) stream.handlers.failed?.(error);
    this.#fail(stream, error);
    this.#forgotten();
  }

  /**
   * The peer half-closed a stream (FIN). A handler stream is over on our side; a readable ends
   * now, or when its user says (a `fin` handler that calls {@link SpdyStream.endReadable}).
   */
  #onFin(stream: SpdyStream): void {
    if (!stream.readable) {
      stream.ended = true;
      this.#forgetIfDone(stream);
      stream.handlers.fin?.();
    } else if (stream.handlers.fin) stream.handlers.fin();
    else this.#endReadable(stream);
  }

  #endReadable(stream: SpdyStream): void {
    if (stream.ended) return;
    stream.closeReadable();
    this.#release(stream);
    this.#forgetIfDone(stream);
  }

  /**
   * A readable was pulled (its queue fell below the high-water mark): what was read goes back
   * to the peer as window, and the session may read again.
   */
  #onRead(stream: SpdyStream): void {
    if (stream.ended) return;
    const { read, queued } = stream.takeRead();
    if (read > 0) {
      this.#buffered -= read;
      this.#credit(stream.id, stream.receiveWindow.read(read));
      this.#creditSession(read);
    }
    // Resume at half the mark, so a reader just below it does not pause and resume per message.
    if (queued <= this.#options.streamWindow / 2) this.#full.delete(stream);
    this.#applyBackpressure();
  }

  /**
   * Sends `chunk` in frames of at most `maxDataFrame`, within the peer's windows when it does
   * flow control, then waits while the link holds more than `sendHighWater`: what waits is the
   * writer, so a peer that does not read (or opens no window) holds at most that much of ours.
   */
  async #write(stream: SpdyStream, chunk: Uint8Array): Promise<void> {
    for (let offset = 0; offset < chunk.length;) {
      if (stream.failed) throw stream.failed;
      if (this.#closed) throw this.#options.failures.closed();
      const room = this.#peerFlowControl ? Math.min(stream.sendWindow, this.#sendWindow) : Infinity;
      if (room <= 0) {
        await this.#windowChange.promise;
        continue;
      }
      const n = Math.min(this.#options.maxDataFrame, chunk.length - offset, room);
      stream.sendWindow -= n;
      this.#sendWindow -= n;
      this.#sendData(stream.id, 0, chunk.subarray(offset, offset + n));
      offset += n;
    }
    while (this.#link.bufferedAmount > this.#options.sendHighWater && !this.#closed) {
      await new Promise((r) => setTimeout(r, 1));
    }
  }

  /** Half-closes our side (FIN), unless the stream is already gone. */
  #finish(stream: SpdyStream): void {
    if (this.#streams.get(stream.id) !== stream) return;
    this.#sendData(stream.id, FLAG_FIN, new Uint8Array(0));
    stream.finSent = true;
    this.#forgetIfDone(stream);
  }

  /** Resets one of our streams (CANCEL); its readable and writes fail. */
  #reset(stream: SpdyStream): void {
    if (this.#streams.get(stream.id) !== stream) return;
    this.#streams.delete(stream.id);
    this.#send(controlFrame(RST_STREAM, 0, rstStreamPayload(stream.id, RST_CANCEL)));
    if (stream.readable) this.#fail(stream, this.#options.failures.reset());
    this.#forgotten();
  }

  /** Fails a stream's readable and writes (no frame is sent). */
  #fail(stream: SpdyStream, error: Error): void {
    stream.markFailed(error);
    this.#release(stream);
    this.#windowOpened();
  }

  /** Sends a WINDOW_UPDATE returning `delta` bytes of window (nothing for 0). */
  #credit(id: number, delta: number): void {
    if (delta > 0) this.#send(controlFrame(WINDOW_UPDATE, 0, windowUpdatePayload(id, delta)));
  }

  /** Returns `n` consumed bytes to the session window (batched: {@link ReceiveWindow.read}). */
  #creditSession(n: number): void {
    this.#credit(0, this.#sessionReceive.read(n));
  }

  /**
   * Pauses reading the link while the readables hold too much unread: for a peer without flow
   * control while any stream is at its mark, for any peer while the session is at its mark.
   */
  #applyBackpressure(): void {
    const hold = (!this.#peerFlowControl && this.#full.size > 0) ||
      this.#buffered >= this.#options.sessionWindow;
    if (hold === this.#paused || this.#closed) return;
    this.#paused = hold;
    if (hold) this.#link.pause();
    else this.#link.resume();
  }

  /** A stream no longer counts towards the session's unread bytes (ended, failed, reset). */
  #release(stream: SpdyStream): void {
    this.#buffered -= stream.dropUnread();
    this.#full.delete(stream);
    this.#applyBackpressure();
  }

  #windowOpened(): void {
    this.#windowChange.resolve();
    this.#windowChange = Promise.withResolvers();
  }

  /**
   * Forgets a stream over both ways (a long-lived session would otherwise keep every stream it
   * ever carried).
   */
  #forgetIfDone(stream: SpdyStream): void {
    if (!stream.ended || !(stream.finSent || stream.receiveOnly)) return;
    if (this.#streams.get(stream.id) !== stream) return;
    this.#streams.delete(stream.id);
    this.#forgotten();
  }

  #forgotten(): void {
    if (this.#streams.size === 0 && !this.#closed) this.#options.idle?.();
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

  #shutdown(error: Error): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#options.ended?.(error);
    for (const stream of this.#streams.values()) {
      if (!stream.failed) stream.handlers.failed?.(error);
      stream.markFailed(error);
    }
    this.#streams.clear();
    this.#unechoed.clear();
    this.#full.clear();
    this.#buffered = 0;
    this.#windowOpened();
  }
}

function wordBytes(word: number): Uint8Array {
  return new Uint8Array([word >>> 24, word >>> 16, word >>> 8, word]);
}
