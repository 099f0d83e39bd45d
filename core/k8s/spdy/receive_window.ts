/**
 * The receiving side of one SPDY/3.1 flow-control window (a stream's or the session's, SPDY/3.1
 * §2.6.8): how much the peer may still send, re-opened with WINDOW_UPDATE only as the consumer
 * reads, so a consumer that stops reading stops a peer that honours the window.
 */
export class ReceiveWindow {
  readonly #size: number;
  /** Bytes the peer may still send; negative once it sent past the window. */
  #available: number;
  /** Bytes the consumer read that no WINDOW_UPDATE has returned yet. */
  #unannounced = 0;

  constructor(size: number) {
    this.#size = size;
    this.#available = size;
  }

  /** Records `n` received bytes; false when they overran the window (a flow-control error). */
  receive(n: number): boolean {
    this.#available -= n;
    return this.#available >= 0;
  }

  /**
   * Records `n` bytes the consumer read; returns the WINDOW_UPDATE delta to send now, or 0.
   * Updates are batched to a quarter of the window, so a fast reader costs one frame per quarter
   * window instead of one per read, and the peer never waits for more than that.
   */
  read(n: number): number {
    this.#unannounced += n;
    if (this.#unannounced < this.#size / 4) return 0;
    const delta = this.#unannounced;
    this.#unannounced = 0;
    this.#available += delta;
    return delta;
  }
}
