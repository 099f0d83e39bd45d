/**
 * The direct `Upgrade: SPDY/3.1` request to `pods/{name}/portforward` (docs/portforward.md §2): how
 * kubectl reached pods before Kubernetes 1.31, and its fallback since, for API servers that do
 * not tunnel SPDY over WebSocket and for proxies that strip WebSocket upgrades but pass others.
 * The request carries the kubeconfig's credentials and TLS dial exactly as the WebSocket
 * options built for the tunnel (connection_options.ts) say.
 */
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import type { Duplex as NodeDuplex } from "node:stream";
// @ts-types="@types/ws"
import type WebSocket from "ws";
import { DialError } from "../../mod.ts";

/** The stream protocol kubelets speak over the upgraded connection. */
export const PORT_FORWARD_PROTOCOL = "portforward.k8s.io";

/** The API server (or a proxy before it) does not upgrade to SPDY here: try the next transport. */
export class UpgradeRefused extends Error {}

/**
 * A refused upgrade's status as the dialer reports it: credentials and missing pods are the
 * user's to fix (no other transport would do better); anything else means "not this transport".
 */
export function upgradeRefusal(status: number, what: string): Error {
  if (status === 401 || status === 403) {
    return new DialError("forbidden", `${what} failed with ${status}`);
  }
  if (status === 404) return new DialError("unreachable", `${what} failed with 404 (no such pod)`);
  return new UpgradeRefused(`${what} refused with ${status}`);
}

/** The switched connection and any bytes that came with the 101 response. */
export interface SpdyUpgrade {
  socket: NodeDuplex;
  head: Uint8Array;
}

/**
 * Sends the upgrade. `url` is the portforward URL (https:// or http://); `options` the tunnel's
 * WebSocket options (credentials in `headers`, the TLS dial in `createConnection` or the
 * `node:tls` settings, the limit in `handshakeTimeout`).
 */
export function upgradeToSpdy(url: string, options: WebSocket.ClientOptions): Promise<SpdyUpgrade> {
  const { handshakeTimeout, headers, ...rest } = options;
  return new Promise((resolve, reject) => {
    const request = (url.startsWith("https:") ? httpsRequest : httpRequest)(url, {
      ...(rest as Record<string, unknown>),
      method: "POST",
      timeout: handshakeTimeout,
      headers: {
        ...(headers as Record<string, string> | undefined),
        Connection: "Upgrade",
        Upgrade: "SPDY/3.1",
        "X-Stream-Protocol-Version": PORT_FORWARD_PROTOCOL,
      },
    });
    request.on("upgrade", (response, socket: NodeDuplex, head: Uint8Array) => {
      const upgrade = String(response.headers["upgrade"] ?? "").toLowerCase();
      const protocol = response.headers["x-stream-protocol-version"];
      if (upgrade !== "spdy/3.1" || protocol !== PORT_FORWARD_PROTOCOL) {
        socket.destroy();
        reject(
          new UpgradeRefused(
            `the API server switched to "${upgrade}" with stream protocol "${protocol ?? ""}"`,
          ),
        );
        return;
      }
      resolve({ socket, head: new Uint8Array(head.buffer, head.byteOffset, head.byteLength) });
    });
    request.on("response", (response) => {
      response.resume();
      reject(upgradeRefusal(response.statusCode ?? 0, "port-forward SPDY upgrade"));
    });
    request.on("timeout", () => {
      request.destroy();
      reject(new DialError("timeout", "port-forward SPDY upgrade timed out"));
    });
    request.on("error", (error: Error) => {
      reject(new DialError("error", `port-forward connection: ${error.message}`));
    });
    request.end();
  });
}
