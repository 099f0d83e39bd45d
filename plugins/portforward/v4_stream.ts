/**
 * One pod TCP connection over a v4 channel WebSocket (docs/portforward.md §8), as a {@link Duplex}:
 * data channel 0 and error channel 1, each opened by the kubelet with the 2-byte port prefix;
 * error-channel text fails the connection; the socket's close is the pod's EOF. v4 has no
 * half-close: closing our side leaves the socket open until the pod finishes (§8).
 */
// @ts-types="@types/ws"
import WebSocket from "ws";
import type { ApiRequestOptions } from "../../core/k8s/api_connection.ts";
import { DialError, type Duplex } from "../../mod.ts";
import { LinkLiveness, type LivenessOptions } from "./link_liveness.ts";
import { MAX_MESSAGE, SEND_HIGH_WATER, STREAM_HIGH_WATER } from "./limits.ts";
import { ReplyDeadline } from "./reply_deadline.ts";
import { CredentialsRefused } from "./spdy_upgrade.ts";
import { oneLine } from "../../core/peer_text.ts";
import { kubeletFailure } from "./kubelet_error.ts";

/** How long after the prefixes a refusal must show up on the error channel to count as a dial
 * failure (the kubelet dials right after sending them; a refusal arrives within a millisecond). */
const REFUSAL_GRACE_MS = 40;
/** The most of a refused upgrade's body read for its message. */
const MAX_REFUSAL_TEXT = 64 * 1024;
/**
 * The kubelet writes the port prefixes before it dials (§8), so prefixes missing this long after
 * the upgrade (or twice the upgrade's duration, if that is more) mean it is wedged: fail the
 * connection as a timeout instead of hanging.
 */
const PREFIX_TIMEOUT_MS = 1_500;
/** After the app's half-close, how long the pod may stay silent before the stream ends. */
const HALF_CLOSE_QUIET_MS = 250;

/**
 * Opens the stream. `options` are `ws` client options with the kubeconfig's auth applied. With
 * `early` the duplex is handed over once the port prefixes arrived and `accepted` carries the
 * refusal verdict (`DialOptions.early`); otherwise the verdict is awaited first.
 */
export function openV4Stream(
  url: string,
  options: ApiRequestOptions,
  signal: AbortSignal,
  refusalGraceMs = REFUSAL_GRACE_MS,
  early = false,
  livenessOptions: LivenessOptions = {},
): Promise<Duplex> {
  let accept!: () => void;
  let refuse!: (error: DialError) => void;
  const accepted = new Promise<void>((resolve, reject) => {
    accept = resolve;
    refuse = reject;
  });
  accepted.catch(() => {});
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const ws = new WebSocket(url, ["v4.channel.k8s.io"], {
      // A repeated header (Impersonate-Group) is an array, which `ws` hands to node:http as is.
      ...options as WebSocket.ClientOptions,
      maxPayload: MAX_MESSAGE,
      perMessageDeflate: false,
      // Pongs are answered below, within the send high-water mark: `ws` would answer a server
      // that floods pings and reads nothing until its socket held them all.
      autoPong: false,
    });
    ws.on("ping", (payload: Uint8Array) => {
      if (ws.bufferedAmount <= SEND_HIGH_WATER) ws.pong(payload);
    });
    let prefixDeadline: ReplyDeadline | undefined;
    // WebSocket pings (RFC 6455 §5.5.2) keep the connection busy through idle-killing proxies and
    // notice a black-holed one; the kubelet's and API server's WebSocket libraries answer them.
    let liveness: LinkLiveness | undefined;
    ws.once("open", () => {
      liveness = new LinkLiveness({
        ping: () => ws.ping(),
        dead: (silentMs) =>
          fail(
            new DialError(
              "timeout",
              `the API server stopped answering (nothing for ${
                Math.round(silentMs / 1000)
              } s, pings unanswered): the port-forward connection was closed`,
            ),
          ),
        paused: () => ws.isPaused,
      }, livenessOptions);
      const limit = Math.round(Math.max(PREFIX_TIMEOUT_MS, 2 * (performance.now() - started)));
      // `ws` hands on frames in order: a pong read means what came before it was read too.
      const ping = () =>
        new Promise<void>((resolve) => {
          ws.once("pong", () => resolve());
          ws.ping();
        });
      prefixDeadline = new ReplyDeadline(limit, ping, () => {
        if (prefixes < 2) {
          fail(new DialError("timeout", `the kubelet did not answer within ${limit} ms`));
        }
      });
    });
    ws.binaryType = "nodebuffer";
    let prefixes = 0;
    let settled = false;
    let readable: ReadableStreamDefaultController<Uint8Array> | undefined;
    let readableDone = false;
    let failure: DialError | undefined;
    const pending: Uint8Array[] = [];
    let halfClosed = false;
    let quietTimer: ReturnType<typeof setTimeout> | undefined;
    const armQuietClose = () => {
      clearTimeout(quietTimer);
      quietTimer = setTimeout(() => ws.close(1000), HALF_CLOSE_QUIET_MS);
    };
    const fail = (error: DialError) => {
      liveness?.stop();
      failure ??= error;
      refuse(error);
      if (!settled) {
        settled = true;
        reject(error);
      } else if (readable && !readableDone) {
        readableDone = true;
        readable.error(error);
      }
      ws.terminate();
    };
    const onAbort = () => fail(new DialError("error", "dial aborted"));
    signal.addEventListener("abort", onAbort, { once: true });

    ws.on("unexpected-response", (_req, res) => {
      let body = "";
      const decoder = new TextDecoder();
      res.on("data", (c: Uint8Array) => {
        // Only the start is kept: it is the message, and the server decides how long a body is.
        if (body.length < MAX_REFUSAL_TEXT) body += decoder.decode(c, { stream: true });
      });
      res.on("end", () => {
        const status = res.statusCode ?? 0;
        let message = oneLine(body);
        try {
          const parsed = JSON.parse(body)?.message;
          if (typeof parsed === "string") message = oneLine(parsed);
        } catch {
          // plain-text kubelet error
        }
        const reason = status === 401 || status === 403
          ? "forbidden"
          : status === 404
          ? "unreachable"
          : "error";
        const text = `port-forward upgrade failed with ${status}: ${message || "no body"}`;
        fail(
          status === 401 ? new CredentialsRefused(text) : new DialError(reason, text),
        );
      });
    });
    ws.on(
      "error",
      (error: Error) =>
        fail(
          new DialError(
            /timed out/i.test(error.message) ? "timeout" : "error",
            `port-forward connection: ${error.message}`,
          ),
        ),
    );
    ws.on("pong", () => liveness?.heard());
    ws.on("message", (data: Uint8Array) => {
      liveness?.heard();
      if (data.length === 0) return;
      const channel = data[0];
      const payload = data.subarray(1);
      if (prefixes < 2) {
        prefixes++;
        if (prefixes === 2) {
          prefixDeadline?.cancel();
          const handOver = () => {
            if (settled) return;
            settled = true;
            signal.removeEventListener("abort", onAbort);
            resolve(duplex);
          };
          if (early) handOver();
          setTimeout(() => {
            accept();
            handOver();
          }, refusalGraceMs);
        }
        return;
      }
      if (channel === 1) {
        fail(kubeletFailure(payload));
        return;
      }
      if (channel !== 0) return;
      accept(); // the pod answered: it took the connection
      if (halfClosed) armQuietClose();
      const copy = new Uint8Array(payload);
      if (readableDone) return; // the app cancelled: the rest is dropped
      if (readable) {
        readable.enqueue(copy);
        if ((readable.desiredSize ?? 1) <= 0) ws.pause();
      } else pending.push(copy);
    });
    ws.on("close", () => {
      liveness?.stop();
      clearTimeout(quietTimer);
      prefixDeadline?.cancel();
      if (!settled) {
        fail(new DialError("error", "port-forward closed before the connection was set up"));
        return;
      }
      if (readable && !readableDone) {
        readableDone = true;
        readable.close();
      }
    });

    const duplex: Duplex = {
      readable: new ReadableStream<Uint8Array>({
        start(controller) {
          readable = controller;
          for (const chunk of pending.splice(0)) controller.enqueue(chunk);
          if (failure) {
            readableDone = true;
            controller.error(failure);
          } else if (ws.readyState === WebSocket.CLOSED) {
            readableDone = true;
            controller.close();
          }
        },
        pull() {
          ws.resume();
        },
        cancel() {
          // A cancelled stream cannot be closed or written to: the socket's last events must not
          // try (they would throw out of an event handler).
          readableDone = true;
          ws.terminate();
        },
      }, new ByteLengthQueuingStrategy({ highWaterMark: STREAM_HIGH_WATER })),
      writable: new WritableStream<Uint8Array>({
        async write(chunk) {
          if (failure) throw failure;
          const message = new Uint8Array(chunk.length + 1);
          message.set(chunk, 1);
          ws.send(message);
          while (ws.bufferedAmount > SEND_HIGH_WATER && ws.readyState === WebSocket.OPEN) {
            await new Promise((r) => setTimeout(r, 1));
          }
        },
        close() {
          // v4 cannot half-close (docs/portforward.md §8): the pod never sees our EOF. Keep
          // reading until the pod has been quiet for a moment, then close, so
          // `printf req | nc -N` style clients get their whole answer and an end. (The SPDY transport carries a real half-close.)
          halfClosed = true;
          armQuietClose();
        },
        abort() {
          ws.terminate();
        },
      }),
      abort() {
        fail(new DialError("error", "aborted"));
      },
      accepted: early ? accepted : undefined,
    };
  });
}
