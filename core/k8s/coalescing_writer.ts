/**
 * Writes frames to a socket one buffer at a time: a frame sent while the socket is idle goes at
 * once; those sent while a write is out are built straight into the next buffer and go together
 * when it completes, in order. A bulk transfer then allocates nothing per frame (the buffers are
 * reused) and costs one socket write (one TLS write, one syscall) per batch instead of per frame.
 */

/** How a frame whose payload is `head` then `body` is laid out. */
export interface FrameFormat {
  /** Bytes of a frame with `payloadLength` bytes of payload. */
  length(payloadLength: number): number;
  /** Writes the frame into `target` at `offset` (room is there); returns the offset after it. */
  encodeInto(target: Uint8Array, offset: number, head: Uint8Array, body: Uint8Array): number;
}

/** The payload as it is: SPDY frames on a connection a direct upgrade switched. */
export const RAW_FRAMES: FrameFormat = {
  length: (payloadLength) => payloadLength,
  encodeInto(target, offset, head, body) {
    target.set(head, offset);
    target.set(body, offset + head.length);
    return offset + head.length + body.length;
  },
};

/** Bytes of one write's buffer: many 32 KiB data frames, one TLS write. */
const CHUNK = 256 * 1024;
/**
 * Spare write buffers kept while writes queue up (a bulk upload keeps megabytes queued: each
 * buffer would otherwise be a fresh zeroed allocation), and once the queue has drained.
 */
const SPARES_BUSY = 32;
const SPARES_IDLE = 2;

/** See the module comment. */
export class CoalescingWriter {
  readonly #format: FrameFormat;
  readonly #spares: Uint8Array[] = [];
  readonly #write: (bytes: Uint8Array, done: () => void) => void;
  /** Buffers not handed to the socket yet; the last one is being filled. */
  readonly #queue: { buffer: Uint8Array; length: number }[] = [];
  #writing = false;
  #queued = 0;
  /** Called once everything sent before them is written. */
  #drained: (() => void)[] = [];

  /** `write` takes the bytes and calls `done` once they are written (they are reused after). */
  constructor(format: FrameFormat, write: (bytes: Uint8Array, done: () => void) => void) {
    this.#format = format;
    this.#write = write;
  }

  /** Bytes sent here and not handed to the socket yet. */
  get queuedBytes(): number {
    return this.#queued;
  }

  /**
   * Sends one frame whose payload is `head` then `body` (both copied before this returns), laid
   * out by `format` (the writer's own unless given: e.g. a WebSocket control frame among binary
   * messages), after every frame sent before it.
   */
  send(head: Uint8Array, body: Uint8Array, format: FrameFormat = this.#format): void {
    const n = format.length(head.length + body.length);
    let last = this.#queue.at(-1);
    if (!last || last.length + n > last.buffer.length) {
      const buffer = n > CHUNK ? new Uint8Array(n) : this.#spares.pop() ?? new Uint8Array(CHUNK);
      last = { buffer, length: 0 };
      this.#queue.push(last);
    }
    last.length = format.encodeInto(last.buffer, last.length, head, body);
    this.#queued += n;
    if (!this.#writing) this.#next();
  }

  /** Calls `callback` once every frame sent so far is written (at once if they are). */
  whenDrained(callback: () => void): void {
    if (!this.#writing && this.#queue.length === 0) callback();
    else this.#drained.push(callback);
  }

  #next(): void {
    const chunk = this.#queue.shift();
    if (!chunk) {
      const drained = this.#drained;
      this.#drained = [];
      for (const callback of drained) callback();
      return;
    }
    this.#writing = true;
    this.#queued -= chunk.length;
    this.#write(chunk.buffer.subarray(0, chunk.length), () => {
      this.#writing = false;
      const keep = this.#queue.length > 0 ? SPARES_BUSY : SPARES_IDLE;
      if (chunk.buffer.length === CHUNK) this.#spares.push(chunk.buffer);
      this.#spares.length = Math.min(this.#spares.length, keep);
      this.#next();
    });
  }
}
