/**
 * The direct `Upgrade: SPDY/3.1` request to `pods/{name}/portforward` (docs/portforward.md §2): how
 * kubectl reached pods before Kubernetes 1.31, and its fallback since, for API servers that do
 * not tunnel SPDY over WebSocket and for proxies that strip WebSocket upgrades but pass others.
 * The request carries the kubeconfig's credentials and TLS dial exactly as the WebSocket
 * options built for the tunnel (connection_options.ts) say. The WebSocket tunnel's own upgrade
 * (session_link.ts) is the same request with other headers and checks.
 */
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import type { Duplex as NodeDuplex } from "node:stream";
import type { ApiRequestOptions } from "../../core/k8s/api_connection.ts";
import { DialError } from "../../mod.ts";

/** The stream protocol kubelets speak over the upgraded connection. */
export const PORT_FORWARD_PROTOCOL = "portforward.k8s.io";

/** The API server (or a proxy before it) does not upgrade to SPDY here: try the next transport. */
export class UpgradeRefused extends Error {}

/**
 * The API server answered 401 Unauthorized: the credentials it was given are no longer good (a
 * revoked or rotated token), so the dialer has a cached plugin credential fetched again.
 */
export class CredentialsRefused extends DialError {
  constructor(message: string) {
    super("forbidden", message);
  }
}

/**
 * A refused upgrade's status as the dialer reports it: credentials and missing pods are the
 * user's to fix (no other transport would do better); anything else means "not this transport".
 */
export function upgradeRefusal(status: number, what: string): Error {
  if (status === 401) return new CredentialsRefused(`${what} failed with 401`);
  if (status === 403) {
    return new DialError("forbidden", `${what} failed with 403`);
  }
  if (status === 404) return new DialError("unreachable", `${what} failed with 404 (no such pod)`);
  return new UpgradeRefused(`${what} refused with ${status}`);
}

/** The switched connection and any bytes that came with the 101 response. */
export interface SpdyUpgrade {
  socket: NodeDuplex;
  head: Uint8Array;
}

/** What an upgrade request sends, and how its 101 answer is judged. */
export interface UpgradeRequest {
  method: "GET" | "POST";
  /** The upgrade's own headers, sent after the kubeconfig's credentials. */
  headers: Record<string, string>;
  /** What errors call this upgrade, e.g. "port-forward SPDY upgrade". */
  what: string;
  /**
   * Why the 101 does not switch to what was asked: an {@link UpgradeRefused} lets the dialer try
   * the next transport. Undefined when it does.
   */
  check(headers: Record<string, string | string[] | undefined>): Error | undefined;
}

/**
 * Sends an upgrade request and hands over the switched connection. `url` is the portforward URL
 * (https:// or http://); `options` the tunnel's WebSocket options (credentials in `headers`, the
 * TLS dial in `createConnection` or the `node:tls` settings, the limit in `handshakeTimeout`).
 */
export function upgradeConnection(
  url: string,
  options: ApiRequestOptions,
  upgrade: UpgradeRequest,
): Promise<SpdyUpgrade> {
  const { handshakeTimeout, headers, ...rest } = options;
  return new Promise((resolve, reject) => {
    const request = (url.startsWith("https:") ? httpsRequest : httpRequest)(url, {
      ...(rest as Record<string, unknown>),
      method: upgrade.method,
      timeout: handshakeTimeout,
      headers: { ...(headers as Record<string, string> | undefined), ...upgrade.headers },
    });
    request.on("upgrade", (response, socket: NodeDuplex, head: Uint8Array) => {
      const problem = upgrade.check(response.headers);
      if (problem) {
        socket.destroy();
        reject(problem);
        return;
      }
      // The handshake's limit no longer applies: a link is idle as long as its users are.
      (socket as NodeDuplex & { setTimeout?: (ms: number) => void }).setTimeout?.(0);
      resolve({ socket, head: new Uint8Array(head.buffer, head.byteOffset, head.byteLength) });
    });
    request.on("response", (response) => {
      response.resume();
      reject(upgradeRefusal(response.statusCode ?? 0, upgrade.what));
    });
    request.on("timeout", () => {
      request.destroy();
      reject(new DialError("timeout", `${upgrade.what} timed out`));
    });
    request.on("error", (error: Error) => {
      reject(new DialError("error", `port-forward connection: ${error.message}`));
    });
    request.end();
  });
}

/** Sends the direct `Upgrade: SPDY/3.1` (see {@link upgradeConnection}). */
export function upgradeToSpdy(url: string, options: ApiRequestOptions): Promise<SpdyUpgrade> {
  return upgradeConnection(url, options, {
    method: "POST",
    headers: {
      Connection: "Upgrade",
      Upgrade: "SPDY/3.1",
      "X-Stream-Protocol-Version": PORT_FORWARD_PROTOCOL,
    },
    what: "port-forward SPDY upgrade",
    check(headers) {
      const upgrade = String(headers["upgrade"] ?? "").toLowerCase();
      const protocol = headers["x-stream-protocol-version"];
      if (upgrade === "spdy/3.1" && protocol === PORT_FORWARD_PROTOCOL) return undefined;
      return new UpgradeRefused(
        `the API server switched to "${upgrade}" with stream protocol "${protocol ?? ""}"`,
      );
    },
  });
}
