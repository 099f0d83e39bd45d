/**
 * One stream of a SPDY/3.1 session (session.ts) and the contracts around it: the link the
 * session runs over, what its user hears of a stream, and what its failures become. A stream
 * holds its own state (reply, windows, unread bytes); the session decides what frames mean.
 */
import { ReceiveWindow } from "./receive_window.ts";
import { concatBytes } from "../../stream/concat_bytes.ts";

/**
 * What a session runs over: bytes either way, framed by the link (e.g. WebSocket messages, or
 * nothing on a connection a direct upgrade switched).
 */
export interface SpdyLink {
  /** Frames may be sent (the link is up and not closing). */
  readonly open: boolean;
  /** Bytes written and not yet taken by the kernel. */
  readonly bufferedAmount: number;
  /** Sends a SPDY frame the session built (it is not reused). */
  send(frame: Uint8Array): void;
  /**
   * Sends a data frame as `header` then `body`; both are copied before this returns (the header
   * is reused, the body is the writer's).
   */
  sendData(header: Uint8Array, body: Uint8Array): void;
  /** Stops and resumes reading from the peer (backpressure). */
  pause(): void;
  resume(): void;
  /** Ends the link at once. */
  terminate(): void;
  /** Ends the link politely. */
  close(): void;
  /** Wires the session: bytes received, the link ended, anything at all heard from the peer. */
  listen(handlers: { bytes(bytes: Uint8Array): void; closed(): void; heard(): void }): void;
}

/** The errors a session's failures become: its user's type, so its apps see one kind. */
export interface SessionFailures {
  /** The link closed, or a write met a closed session. */
  closed(): Error;
  /** The peer broke the framing or the session's window (`reason` says how): the session ends. */
  broken(reason: string): Error;
  /** The peer reset a stream (RST_STREAM). */
  peerReset(): Error;
  /** The peer broke a stream's window: we reset that stream (FLOW_CONTROL_ERROR, §2.6.8). */
  streamFlowControl(): Error;
  /** We reset a stream (its user did, or its readable was cancelled). */
  reset(): Error;
}

/** What a stream's user hears. */
export interface StreamHandlers {
  /** SYN_REPLY arrived (§2.6.2). */
  replied?(): void;
  /**
   * Bytes arrived: with delivery "handler" this is where they go (consumed on return); with
   * "readable" they are queued on the readable right after.
   */
  received?(bytes: Uint8Array): void;
  /**
   * The peer half-closed (FIN). A readable stream with this handler ends only when its user calls
   * {@link SpdyStream.endReadable}; without it, at once.
   */
  fin?(): void;
  /**
   * The stream failed from the far side: the peer reset it, broke its window, or the session
   * ended. Not called for a stream already failed, nor for the user's own resets.
   */
  failed?(error: Error): void;
  /** The app cancelled the readable; without this handler the stream is reset. */
  cancelled?(): void;
}

/** A stream to open. */
export interface StreamSpec {
  /** The SYN_STREAM's name/value header block (§2.6.10). */
  headers: [string, string][];
  /**
   * "readable": the peer's bytes queue on {@link SpdyStream.readable}, and its window returns as
   * they are read (backpressure). "handler": each frame's bytes go to `handlers.received` and
   * are consumed at once.
   */
  delivery: "readable" | "handler";
  /** We never send on this stream, not even FIN: it is over once the peer's side is. */
  receiveOnly?: boolean;
  handlers?: StreamHandlers;
}

/** What a stream asks of its session. */
export interface StreamHost {
  read(stream: SpdyStream): void;
  write(stream: SpdyStream, chunk: Uint8Array): Promise<void>;
  finish(stream: SpdyStream): void;
  reset(stream: SpdyStream): void;
  fail(stream: SpdyStream, error: Error): void;
  endReadable(stream: SpdyStream): void;
}

/** One stream; opened by {@link SpdySession.open}. */
export class SpdyStream {
  readonly id: number;
  readonly handlers: StreamHandlers;
  readonly receiveOnly: boolean;
  /** The peer's bytes (delivery "readable" only). */
  readonly readable?: ReadableStream<Uint8Array>;
  /**
   * Settles at the stream's SYN_REPLY, or its failure. Kubernetes' spdystream drops DATA for a
   * stream it has not replied to yet, so writers wait for it (client-go waits the same way).
   */
  readonly replied: Promise<void>;
  /** Why the stream failed; writes throw it. */
  failed?: Error;
  /** Our receiving side is over (FIN delivered, failed or reset). */
  ended = false;
  /** We sent FIN. */
  finSent = false;
  /** What the peer lets us send on this stream (obeyed once it shows it does flow control). */
  sendWindow: number;
  /** What the peer may still send on this stream. */
  readonly receiveWindow: ReceiveWindow;
  readonly #host: StreamHost;
  readonly #highWater: number;
  readonly #replied = Promise.withResolvers<void>();
  #controller?: ReadableStreamDefaultController<Uint8Array>;
  /** Bytes handed to the readable, and how many of them were read so far. */
  #enqueued = 0;
  #read = 0;
  /** Pieces of a handler stream's frame not complete yet ({@link assemble}). */
  #pieces: Uint8Array[] = [];

  constructor(
    id: number,
    spec: StreamSpec,
    sendWindow: number,
    host: StreamHost,
    receiveWindow: number,
  ) {
    this.id = id;
    this.handlers = spec.handlers ?? {};
    this.receiveOnly = spec.receiveOnly ?? false;
    this.sendWindow = sendWindow;
    this.receiveWindow = new ReceiveWindow(receiveWindow);
    this.replied = this.#replied.promise;
    this.#host = host;
    this.#highWater = receiveWindow;
    if (spec.delivery === "readable") {
      // Bytes that arrive before anyone reads already count against the high-water mark.
      this.readable = new ReadableStream<Uint8Array>(
        {
          start: (controller) => {
            this.#controller = controller;
          },
          pull: () => host.read(this),
          cancel: () => this.handlers.cancelled ? this.handlers.cancelled() : host.reset(this),
        },
        new ByteLengthQueuingStrategy({ highWaterMark: receiveWindow }),
      );
    }
  }

  /** Sends `chunk` as DATA frames; resolves when the link can take more. */
  write(chunk: Uint8Array): Promise<void> {
    return this.#host.write(this, chunk);
  }

  /** Half-closes our side (FIN). */
  finish(): void {
    this.#host.finish(this);
  }

  /** Resets the stream (RST_STREAM CANCEL): its readable and writes fail. */
  reset(): void {
    this.#host.reset(this);
  }

  /** Fails the readable and writes with `error`, sending nothing (the user's own verdict). */
  fail(error: Error): void {
    this.#host.fail(this, error);
  }

  /** Ends the readable after the peer's FIN (see {@link StreamHandlers.fin}). */
  endReadable(): void {
    this.#host.endReadable(this);
  }

  // The session's side.

  /** SYN_REPLY arrived. */
  onReply(): void {
    this.#replied.resolve();
    this.handlers.replied?.();
  }

  /**
   * Joins the pieces of a streamed frame for a handler stream: undefined while `more` follow,
   * then the whole frame's bytes.
   */
  assemble(piece: Uint8Array, more: boolean): Uint8Array | undefined {
    if (!more && this.#pieces.length === 0) return piece;
    this.#pieces.push(piece.slice());
    if (more) return undefined;
    const whole = concatBytes(this.#pieces);
    this.#pieces = [];
    return whole;
  }

  /** Records `n` received bytes; false when they overran the window. */
  receive(n: number): boolean {
    return this.receiveWindow.receive(n);
  }

  /** Queues bytes on the readable; true when it reached its high-water mark. */
  enqueue(bytes: Uint8Array): boolean {
    this.#controller!.enqueue(bytes);
    this.#enqueued += bytes.length;
    return (this.#controller!.desiredSize ?? 0) <= 0;
  }

  /** Bytes read since the last call, and bytes still queued. */
  takeRead(): { read: number; queued: number } {
    const queued = this.#highWater - (this.#controller?.desiredSize ?? 0);
    const total = this.#enqueued - queued;
    const read = Math.max(0, total - this.#read);
    this.#read += read;
    return { read, queued };
  }

  /** Counts every queued byte as read (the readable ended or failed); returns how many. */
  dropUnread(): number {
    const unread = this.#enqueued - this.#read;
    this.#read = this.#enqueued;
    return unread;
  }

  closeReadable(): void {
    this.ended = true;
    this.#controller?.close();
  }

  /** Records the failure (the first one stays) and errors the readable. */
  markFailed(error: Error): void {
    this.#replied.resolve();
    this.failed ??= error;
    if (this.#controller && !this.ended) {
      try {
        this.#controller.error(this.failed);
      } catch {
        // cancelled by the app already
      }
    }
    this.ended = true;
  }
}
