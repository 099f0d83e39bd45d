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

/** See the module comment. */
export class ApiClient {
  readonly #access: ApiAccess;
  readonly #options: ApiConnectionOptions;

  /** `options.handshakeTimeoutMs` bounds a connection and its answer (a GET's whole body). */
  constructor(access: ApiAccess, options: ApiConnectionOptions) {
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
      return JSON.parse(await bodyText(response)) as T;
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
    let partial = "";
    const decoder = new TextDecoder();
    response.on("data", (chunk: Uint8Array) => {
      const lines = (partial + decoder.decode(chunk, { stream: true })).split("\n");
      partial = lines.pop()!;
      for (const line of lines) {
        if (finished) return;
        if (line.trim() === "") continue;
        let parsed: WatchEvent;
        try {
          parsed = JSON.parse(line);
        } catch {
          return finish(new Error(`the watch of ${path} sent a line that is not JSON`));
        }
        event(parsed);
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
        bodyText(response).then(
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

/** The whole body of `response`, as text. */
function bodyText(response: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Uint8Array[] = [];
    response.on("data", (chunk: Uint8Array) => chunks.push(chunk));
    response.on("end", () => {
      resolve(new TextDecoder().decode(concatBytes(chunks)));
    });
    response.on("error", reject);
    response.on("close", () => reject(new Error("the connection closed before the answer ended")));
  });
}

/** "HTTP 403: <the server's Status message>", or the status alone. */
function refusal(status: number, body: string): string {
  try {
    const message = JSON.parse(body)?.message;
    if (typeof message === "string" && message) return `HTTP ${status}: ${message}`;
  } catch {
    // not a Status
  }
  return `HTTP ${status}`;
}
