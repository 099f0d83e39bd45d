/**
 * One port-forward session to a pod: a SPDY/3.1 session (core/k8s/spdy/session.ts) tunnelled
 * over a WebSocket (KEP-4006, the default since Kubernetes 1.31; docs/portforward.md §7) or over
 * a direct `Upgrade: SPDY/3.1` (before 1.31, and through proxies that strip WebSocket upgrades;
 * §2). Each connection is an error+data stream pair (§5), so a new connection costs two
 * SYN_STREAMs on an open link instead of TLS + upgrade + authorisation. The data stream
 * half-closes with FIN (unlike v4); one stream's failure never ends the session.
 */
import type { ApiRequestOptions } from "../../core/k8s/api_connection.ts";
import { DialError, type Duplex } from "../../mod.ts";
import {
  type SessionFailures,
  type SpdyLink,
  SpdySession,
  type SpdyStream,
} from "../../core/k8s/spdy/session.ts";
import { openDirectLink, openTunnelLink } from "./session_link.ts";
import { UpgradeRefused } from "./spdy_upgrade.ts";
import { LinkLiveness, type LivenessOptions } from "./link_liveness.ts";
import { ReplyDeadline } from "./reply_deadline.ts";
import { SEND_HIGH_WATER, SESSION_HIGH_WATER, STREAM_HIGH_WATER } from "./limits.ts";
import { kubeletFailure } from "./kubelet_error.ts";

export { SPDY_TUNNEL_PROTOCOL } from "./session_link.ts";
/** The upgrade was refused (not 101 or not our subprotocol): fall back to the next transport. */
export { UpgradeRefused as SpdyUnavailable };

/** What a stream of a connection's pair carries (its `streamtype` header, §5). */
type StreamRole = "error" | "data";

const REFUSAL_GRACE_MS = 40;
const MIN_GRACE_MS = 1;
/** The kubelet's copy buffer: data frames no larger than the ones it sends. */
const MAX_DATA_FRAME = 32 * 1024;
/**
 * The kubelet replies to a SYN_STREAM before it dials (§5), so a reply that takes longer than
 * this (or four round trips, if that is more) — and is still missing once a PING sent then was
 * echoed (reply_deadline.ts) — means the far side is wedged: the connection fails as a timeout
 * instead of hanging, and a PING checks whether the whole session is.
 */
const STREAM_REPLY_TIMEOUT_MS = 1_500;
const ERROR_END_WAIT_MS = 1_000;

/** How the SPDY session's failures reach the apps (docs/portforward.md §10). */
const FAILURES: SessionFailures = {
  closed: () => new DialError("error", "the port-forward session closed"),
  broken: (reason) => new DialError("error", `the port-forward session broke: ${reason}`),
  peerReset: () => new DialError("error", "the pod side reset the stream"),
  streamFlowControl: () =>
    new DialError(
      "error",
      "the API server broke the connection's flow-control window (SPDY/3.1 §2.6.8): " +
        "the connection was reset",
    ),
  reset: () => new DialError("error", "connection reset"),
};

/** An open session; its flow control and backpressure are the SPDY session's (§6). */
export class PortForwardSession {
  readonly #spdy: SpdySession;
  readonly #liveness: LinkLiveness;
  #nextRequest = 0;
  /** The machine slept since this session opened: new connections go to a new session. */
  #suspect = false;
  /** Smoothed time from SYN_STREAM to SYN_REPLY (starts at the upgrade's duration). */
  #rtt: number;

  private constructor(link: SpdyLink, upgradeMs: number, liveness: LivenessOptions) {
    this.#rtt = upgradeMs;
    this.#liveness = new LinkLiveness({
      ping: () => this.#spdy.ping(),
      dead: (silentMs) =>
        this.#spdy.terminate(
          new DialError(
            "timeout",
            `the API server stopped answering (nothing for ${
              Math.round(silentMs / 1000)
            } s, PINGs unanswered): the port-forward session was closed; new connections open ` +
              "a new one",
          ),
        ),
      suspended: () => {
        // The streams stay while the PING the state machine sends next is answered.
        this.#suspect = true;
        this.#closeIfDrained();
      },
      paused: () => this.#spdy.readingPaused,
    }, liveness);
    this.#spdy = new SpdySession(link, {
      streamWindow: STREAM_HIGH_WATER,
      sessionWindow: SESSION_HIGH_WATER,
      sendHighWater: SEND_HIGH_WATER,
      maxDataFrame: MAX_DATA_FRAME,
      failures: FAILURES,
      heard: () => this.#liveness.heard(),
      ended: () => this.#liveness.stop(),
      idle: () => this.#closeIfDrained(),
    });
  }

  /** Opens a session; rejects with {@link SpdyUnavailable} when the server does not tunnel SPDY. */
  static async open(
    url: string,
    options: ApiRequestOptions,
    liveness: LivenessOptions = {},
  ): Promise<PortForwardSession> {
    const started = performance.now();
    const link = await openTunnelLink(url, options);
    return new PortForwardSession(link, performance.now() - started, liveness);
  }

  /**
   * Opens a session with a direct `Upgrade: SPDY/3.1` (`url` is https:// or http://); rejects
   * with {@link SpdyUnavailable} when the server (or a proxy) does not switch.
   */
  static async openDirect(
    url: string,
    options: ApiRequestOptions,
    liveness: LivenessOptions = {},
  ): Promise<PortForwardSession> {
    const started = performance.now();
    const link = await openDirectLink(url, options);
    return new PortForwardSession(link, performance.now() - started, liveness);
  }

  get closed(): boolean {
    return this.#spdy.closed;
  }

  /**
   * New connections may use this session: it is open and the machine has not slept since it
   * opened (after a suspend its connection may be dead without a sign; a new session is cheap).
   */
  get reusable(): boolean {
    return !this.#spdy.closed && !this.#suspect;
  }

  /** Bytes received for the apps' readables and not read by them yet (all streams). */
  get bufferedBytes(): number {
    return this.#spdy.bufferedBytes;
  }

  /**
   * Opens a connection to `port` in the pod. With `early` the duplex is returned as soon as the
   * streams are requested (data may follow at once; the kubelet buffers it until its dial is
   * done) and `accepted` carries the verdict; otherwise the verdict is awaited first.
   */
  async openStream(port: number, signal: AbortSignal, early = false): Promise<Duplex> {
    if (this.#spdy.closed) throw new DialError("error", "the port-forward session is closed");
    const headers = this.#headers(port, String(this.#nextRequest++));
    const verdict = this.#verdict(signal);
    // Error-stream text, or its reset, fails the connection (§5); its end lets the data
    // stream's FIN through.
    let errorText = false;
    let errorEnded = false;
    let afterErrorEnd: (() => void) | undefined;
    const errorEnd = () => {
      errorEnded = true;
      afterErrorEnd?.();
    };
    const [error, data] = this.#spdy.open([
      {
        headers: headers("error"),
        delivery: "handler",
        receiveOnly: true,
        handlers: {
          replied: verdict.replied,
          received: (bytes) => {
            errorText = true;
            verdict.fail(kubeletFailure(bytes));
          },
          fin: errorEnd,
          failed: (failure) => {
            // The kubelet resets the error stream after writing its text: the text failed it.
            if (!errorText) verdict.fail(failure);
            errorEnd();
          },
        },
      },
      {
        headers: headers("data"),
        delivery: "readable",
        handlers: {
          replied: verdict.replied,
          received: verdict.accept,
          fin: () => {
            // The data stream's FIN may come before the error stream's text (kwok writes it
            // first on a failed dial, §5), so the app's stream ends cleanly only once the error
            // stream has ended without text; that end is waited for at most ERROR_END_WAIT_MS.
            if (errorEnded) return data.endReadable();
            const timer = setTimeout(() => data.endReadable(), ERROR_END_WAIT_MS);
            afterErrorEnd = () => {
              clearTimeout(timer);
              data.endReadable();
            };
          },
          failed: (failure) => {
            verdict.fail(failure);
            error.reset();
          },
          cancelled: () => abort(),
        },
      },
    ]);
    const abort = () => {
      error.reset();
      data.reset();
    };
    verdict.bind(data);
    const accepted = verdict.promise;
    accepted.catch(abort);
    if (!early) await accepted;
    return {
      readable: data.readable!,
      writable: new WritableStream<Uint8Array>({
        write: async (chunk) => {
          await data.replied;
          await data.write(chunk);
        },
        close: async () => {
          await data.replied;
          data.finish();
        },
        abort,
      }),
      abort,
      accepted: early ? accepted : undefined,
      // A write resolves once its bytes are copied into the link's frame buffers (session.ts).
      writeReleasesChunk: true,
    };
  }

  /** Ends the session (all its streams fail). */
  close(): void {
    this.#spdy.close(new DialError("error", "the port-forward session was closed"));
  }

  /** A connection's SYN_STREAM headers by role (§5). */
  #headers(port: number, requestId: string): (role: StreamRole) => [string, string][] {
    return (role) => [["streamtype", role], ["port", String(port)], ["requestid", requestId]];
  }

  /**
   * The kubelet replies to both streams, then dials the pod port and reports a refusal on the
   * error stream right away (§5). The connection counts as accepted when the pod sends data, or
   * when about one more round trip after the replies passed without an error. A failure after
   * acceptance (error-stream text, a reset) fails the data stream: the app sees RST, never a
   * clean end of truncated data.
   */
  #verdict(signal: AbortSignal) {
    const sentAt = performance.now();
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    let data: SpdyStream | undefined;
    let replies = 0;
    const limit = Math.round(Math.max(STREAM_REPLY_TIMEOUT_MS, 4 * this.#rtt));
    const unanswered = new ReplyDeadline(limit, () => this.#spdy.ping(), () => {
      fail(new DialError("timeout", `the kubelet did not answer the stream within ${limit} ms`));
      this.#liveness.probe(limit);
    });
    const fail = (failure: Error) => {
      unanswered.cancel();
      reject(failure);
      data?.fail(failure);
    };
    signal.addEventListener("abort", () => fail(new DialError("error", "dial aborted")), {
      once: true,
    });
    return {
      promise,
      fail,
      accept: () => resolve(),
      replied: () => {
        if (++replies !== 2) return;
        unanswered.cancel();
        const rtt = performance.now() - sentAt;
        this.#rtt = 0.8 * this.#rtt + 0.2 * rtt;
        setTimeout(resolve, Math.min(REFUSAL_GRACE_MS, Math.max(MIN_GRACE_MS, rtt)));
      },
      /** The data stream a failure fails. */
      bind: (stream: SpdyStream) => data = stream,
    };
  }

  /** A suspect session (see {@link reusable}) ends once its last connection has. */
  #closeIfDrained(): void {
    if (this.#suspect && this.#spdy.openStreams === 0 && !this.#spdy.closed) this.close();
  }
}
