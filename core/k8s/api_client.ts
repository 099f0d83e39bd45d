/**
 * The few Kubernetes API calls k8stun's cluster view makes: GET of a JSON object or list, and a
 * watch (a chunked stream of `{"type", "object"}` lines, one event per line). Each request dials
 * with the options api_connection.ts builds, credentials included; a 401 tells the access so a
 * cached plugin credential is not reused. A refusal fails with {@link ApiStatusError}, whose
 * message is the server's own (`Status.message`) when it sent one.
 */
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import type { IncomingMessage } from "node:http";
import type { ApiAccess } from "./api_access.ts";
import { type ApiConnectionOptions, apiRequestOptions } from "./api_connection.ts";
import { concatBytes } from "../stream/concat_bytes.ts";
import { oneLine } from "../peer_text.ts";

/**
 * The longest watch line kept while it arrives. One event is one object, which etcd caps at a
 * few MiB (1.5 MiB by default); anything longer is a broken or hostile stream, not an event.
 */
const MAX_WATCH_LINE = 16 * 1024 * 1024;
/**
 * The largest answer taken: lists come in pages of 500 objects (core/cluster/paged_list.ts), a
 * few MiB in a real cluster. A longer body is refused while it arrives, not read into memory —
 * and the text of one past 512 MiB could not even be made (V8's longest string).
 */
const MAX_BODY = 256 * 1024 * 1024;
/** The most of a refusal's body kept for its message. */
const MAX_REFUSAL_BODY = 64 * 1024;

/** The server answered with a status other than 2xx. */
export class ApiStatusError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/** One watch event as the server sends it (`ERROR` carries a `Status` as its object). */
export interface WatchEvent {
  type: "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";
  // deno-lint-ignore no-explicit-any
  object: any;
}

/** An open watch. */
export interface Watching {
  /** Ends the watch now: `ended` hears "the watch was stopped". */
  abort(): void;
}

/** Options for {@link ApiClient}. */
export interface ApiClientOptions extends ApiConnectionOptions {
  /** The longest GET answer taken (default 256 MiB; tests make it small). */
  maxAnswerBytes?: number;
}

/** See the module comment. */
export class ApiClient {
  readonly #access: ApiAccess;
  readonly #options: ApiClientOptions;

  /** `options.handshakeTimeoutMs` bounds a connection and its answer (a GET's whole body). */
  constructor(access: ApiAccess, options: ApiClientOptions) {
    this.#access = access;
    this.#options = options;
  }

  /** GETs `path` (with its query) and parses the JSON answer. */
  async get<T>(path: string): Promise<T> {
    const { response, cancel } = await this.#open(path);
    const limitMs = this.#options.handshakeTimeoutMs;
    let late = false;
    const timer = setTimeout(() => {
      late = true;
      cancel();
    }, limitMs);
    try {
      const limit = this.#options.maxAnswerBytes ?? MAX_BODY;
      return JSON.parse(await bodyText(response, limit, `GET ${path}`)) as T;
    } catch (error) {
      // The cancelled connection fails as "aborted": say what happened instead.
      if (late) throw new Error(`the answer did not end within ${limitMs / 1000} s`);
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Watches `path` (a collection with `watch=1` in its query): resolves once the server answered
   * 200, then calls `event` per line and `ended` once when the stream ends — with an error when it
   * broke or held a line that is not an event.
   */
  async watch(
    path: string,
    event: (event: WatchEvent) => void,
    ended: (error?: Error) => void,
  ): Promise<Watching> {
    const { response, cancel } = await this.#open(path);
    let finished = false;
    const finish = (error?: Error) => {
      if (finished) return;
      finished = true;
      cancel();
      ended(error);
    };
    /** The line being received, in pieces (a big object arrives over many chunks). */
    let partial: string[] = [];
    let partialLength = 0;
    const decoder = new TextDecoder();
    response.on("data", (chunk: Uint8Array) => {
      const text = decoder.decode(chunk, { stream: true });
      if (!text.includes("\n")) {
        partial.push(text);
        partialLength += text.length;
        if (partialLength > MAX_WATCH_LINE) {
          finish(new Error(`the watch of ${path} sent an event over ${MAX_WATCH_LINE >> 20} MiB`));
        }
        return;
      }
      const lines = (partial.join("") + text).split("\n");
      const rest = lines.pop()!;
      partial = [rest];
      partialLength = rest.length;
      for (const line of lines) {
        if (finished) return;
        if (line.trim() === "") continue;
        let parsed: WatchEvent;
        try {
          parsed = JSON.parse(line);
        } catch {
          return finish(new Error(`the watch of ${path} sent a line that is not JSON`));
        }
        if (
          typeof parsed?.type !== "string" || typeof parsed.object !== "object" || !parsed.object
        ) {
          return finish(
            new Error(`the watch of ${path} sent a line that is no {type, object} event`),
          );
        }
        try {
          event(parsed);
        } catch (error) {
          // An event its handler cannot take ends the watch (the caller re-lists); thrown from a
          // socket's data listener it would take the whole process down.
          return finish(error instanceof Error ? error : new Error(String(error)));
        }
      }
    });
    // The server ends a watch cleanly (its timeoutSeconds); a connection that drops is an error.
    response.on("end", () => finish());
    response.on("error", (error: Error) => finish(error));
    response.on("close", () => finish(new Error("the connection closed mid-watch")));
    return { abort: () => finish(new Error("the watch was stopped")) };
  }

  /** Sends the GET; resolves with a 2xx response, rejects with the refusal. */
  async #open(path: string): Promise<{ response: IncomingMessage; cancel: () => void }> {
    const options = await apiRequestOptions(this.#access, this.#options);
    const { handshakeTimeout, ...rest } = options;
    const url = this.#access.server.replace(/\/$/, "") + path;
    const send = url.startsWith("https:") ? httpsRequest : httpRequest;
    return await new Promise((resolve, reject) => {
      const request = send(url, {
        ...(rest as Record<string, unknown>),
        method: "GET",
        timeout: handshakeTimeout,
        headers: { ...rest.headers, Accept: "application/json" },
      });
      const cancel = () => request.destroy();
      request.on("response", (response: IncomingMessage) => {
        const status = response.statusCode ?? 0;
        if (status >= 200 && status < 300) {
          // An open watch is quiet for as long as nothing changes: only the answer had a limit.
          request.setTimeout(0);
          resolve({ response, cancel });
          return;
        }
        if (status === 401) this.#access.rejected();
        bodyText(response, MAX_REFUSAL_BODY).then(
          (text) => reject(new ApiStatusError(status, refusal(status, text))),
          () => reject(new ApiStatusError(status, refusal(status, ""))),
        );
      });
      request.on("timeout", () => {
        request.destroy(new Error(`no answer within ${(handshakeTimeout ?? 0) / 1000} s`));
      });
      request.on("error", reject);
      request.end();
    });
  }
}

/**
 * The body of `response`, as text, up to `limit` bytes. With `tooLong` (what was asked for) a
 * longer body fails the request and its connection is closed; without, the text is cut there.
 */
function bodyText(response: IncomingMessage, limit: number, tooLong?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Uint8Array[] = [];
    let length = 0;
    response.on("data", (chunk: Uint8Array) => {
      if (length >= limit) return;
      chunks.push(chunk.subarray(0, limit - length));
      length += chunk.length;
      if (length > limit && tooLong !== undefined) {
        reject(new Error(`the answer to ${tooLong} is longer than ${limit >> 20} MiB`));
        response.destroy();
      }
    });
    response.on("end", () => {
      try {
        resolve(new TextDecoder().decode(concatBytes(chunks)));
      } catch (error) {
        reject(error); // thrown from an event listener it would end the process
      }
    });
    response.on("error", reject);
    response.on("close", () => reject(new Error("the connection closed before the answer ended")));
  });
}

/** "HTTP 403: <the server's Status message, on one line>", or the status alone. */
function refusal(status: number, body: string): string {
  try {
    const message = JSON.parse(body)?.message;
    if (typeof message === "string" && message) return `HTTP ${status}: ${oneLine(message)}`;
  } catch {
    // not a Status
  }
  return `HTTP ${status}`;
}
