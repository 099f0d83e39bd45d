/**
 * A connection taken before the far end confirmed it (`DialOptions.early`). A port-forward learns
 * that a pod refused only after its streams exist; waiting for that verdict would cost every
 * connection a round trip. Instead the bytes the app writes are kept until `accepted` settles:
 * when it rejects as refused before the app received anything, the next candidate is dialed and
 * the kept bytes (and a half-close) are written there, so the app never notices — the same trick
 * TCP Fast Open clients use when a server ignores the cookie. Past `limit` kept bytes, writes wait
 * for the verdict instead of growing the buffer.
 */
import { DialError, type Duplex } from "../../mod.ts";

/** Default cap of bytes kept for a replay; typical first requests are far smaller. */
export const REPLAY_LIMIT = 64 * 1024;

/**
 * Wraps `first`. `redial` opens the next candidate (rejecting when none is left); it is only
 * called after a refusal. Without `first.accepted` or `redial` there is nothing to wait for or
 * replay: `first` is returned as it is.
 */
export function replayingDuplex(
  first: Duplex,
  redial: (() => Promise<Duplex>) | undefined,
  limit = REPLAY_LIMIT,
): Duplex {
  if (!first.accepted) return first;
  // Nothing to replay on: a refusal errors `first`'s readable (Duplex.accepted) as it would ours,
  // and its byte stream stays unwrapped (BYOB reads, released write chunks).
  if (!redial) return first;
  return new ReplayingDuplex(first, first.accepted, redial, limit).duplex;
}

class ReplayingDuplex {
  readonly duplex: Duplex;
  #current: Duplex;
  #reader: ReadableStreamDefaultReader<Uint8Array>;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  /** Bytes written so far, while the first connection is unconfirmed; undefined afterwards. */
  #kept: Uint8Array[] | undefined = [];
  #keptBytes = 0;
  #halfClosed = false;
  #delivered = false;
  #aborted = false;
  /** Why the connection failed for good (replay impossible or exhausted). */
  #failure: unknown;
  /** Settles once the first connection's verdict has been handled. */
  readonly #verdict: Promise<void>;
  /** Set (synchronously) when a refusal starts a replay; resolves when it is over. */
  #switching: Promise<void> = Promise.resolve();

  constructor(
    first: Duplex,
    accepted: Promise<void>,
    readonly redial: (() => Promise<Duplex>) | undefined,
    readonly limit: number,
  ) {
    this.#current = first;
    if (!redial) this.#kept = undefined; // nothing to replay on: keep nothing
    this.#reader = first.readable.getReader();
    this.#writer = first.writable.getWriter();
    this.#verdict = accepted.then(
      () => {
        this.#kept = undefined;
      },
      (error) => {
        this.#switching = this.#replayElsewhere(error);
      },
    );
    this.duplex = {
      readable: new ReadableStream<Uint8Array>({
        pull: (controller) => this.#pull(controller),
        cancel: (reason) => this.#abort(reason),
      }, { highWaterMark: 0 }),
      writable: new WritableStream<Uint8Array>({
        write: (chunk) => this.#write(chunk),
        close: () => this.#close(),
        abort: (reason) => this.#abort(reason),
      }),
      abort: (reason) => this.#abort(reason),
    };
  }

  /** Waits until any verdict and replay in progress are over. */
  async #settled(): Promise<void> {
    await this.#verdict;
    await this.#switching;
  }

  async #pull(controller: ReadableStreamDefaultController<Uint8Array>): Promise<void> {
    for (;;) {
      const reader = this.#reader;
      try {
        const { value, done } = await reader.read();
        if (reader !== this.#reader) continue; // replaced while we waited: read the new one
        if (done) controller.close();
        else {
          this.#delivered = true;
          controller.enqueue(value);
        }
        return;
      } catch (error) {
        // A refusal errors the stream and rejects `accepted`; the replay may be under way.
        await this.#settled();
        if (reader !== this.#reader) continue;
        throw this.#failure ?? error;
      }
    }
  }

  async #write(chunk: Uint8Array): Promise<void> {
    for (;;) {
      await this.#switching;
      if (this.#failure !== undefined) throw this.#failure;
      if (this.#kept && this.#keptBytes + chunk.length > this.limit) {
        await this.#settled(); // no more buffering: wait for the verdict
        continue;
      }
      // Keep and write in one synchronous step, so a replay never sends a chunk twice.
      this.#kept?.push(chunk.slice());
      this.#keptBytes += chunk.length;
      const writer = this.#writer;
      try {
        await writer.write(chunk);
      } catch (error) {
        await this.#settled();
        if (writer !== this.#writer) return; // the replay carried this chunk
        throw this.#failure ?? error;
      }
      return;
    }
  }

  async #close(): Promise<void> {
    await this.#switching;
    if (this.#failure !== undefined) throw this.#failure;
    this.#halfClosed = true;
    const writer = this.#writer;
    try {
      await writer.close();
    } catch (error) {
      await this.#settled();
      if (writer !== this.#writer) return;
      throw this.#failure ?? error;
    }
  }

  #abort(reason?: unknown): void {
    this.#aborted = true;
    this.#failure ??= reason ?? new DialError("error", "aborted");
    this.#current.abort(reason);
  }

  /** After a refusal: dial the next candidate, replay, and wait for its own verdict. */
  async #replayElsewhere(refusal: unknown): Promise<void> {
    let error = refusal;
    for (;;) {
      const replayable = this.redial && !this.#delivered && !this.#aborted &&
        error instanceof DialError && error.reason === "refused";
      this.#current.abort(error);
      if (!replayable) {
        this.#failure ??= error;
        this.#kept = undefined;
        return;
      }
      let next: Duplex;
      try {
        next = await this.redial!();
      } catch (failure) {
        this.#failure ??= failure;
        this.#kept = undefined;
        return;
      }
      if (this.#aborted) {
        next.abort(this.#failure);
        return;
      }
      this.#current = next;
      this.#reader = next.readable.getReader();
      this.#writer = next.writable.getWriter();
      try {
        for (const chunk of this.#kept ?? []) await this.#writer.write(chunk);
        if (this.#halfClosed) await this.#writer.close();
      } catch {
        // A failing replay shows up as this connection's verdict or as a read error.
      }
      const verdict = await (next.accepted ?? Promise.resolve()).then(() => undefined, (e) => e);
      if (verdict === undefined) {
        this.#kept = undefined;
        return;
      }
      error = verdict;
    }
  }
}
