/**
 * The client's side of the WebSocket opening handshake (RFC 6455 §4.1): the request headers,
 * and the checks on the server's 101 that prove it is a WebSocket server that read this request
 * (§4.2.2 item 5.4: `Sec-WebSocket-Accept`) and took the subprotocol asked for (§4.1, item 6 of
 * the client's checks).
 */
import { createHash } from "node:crypto";

/** Appended to the key before hashing (RFC 6455 §1.3). */
const HANDSHAKE_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/** A fresh `Sec-WebSocket-Key`: 16 random bytes, base64 (§4.1 item 7). */
export function webSocketKey(random: Uint8Array = crypto.getRandomValues(new Uint8Array(16))) {
  return btoa(String.fromCharCode(...random));
}

/** The `Sec-WebSocket-Accept` a server answers `key` with: base64(SHA-1(key + GUID)). */
export function webSocketAccept(key: string): string {
  return createHash("sha1").update(key + HANDSHAKE_GUID).digest("base64");
}

/** The upgrade request's headers for `key` and the one subprotocol asked for. */
export function webSocketUpgradeHeaders(key: string, protocol: string): Record<string, string> {
  return {
    Connection: "Upgrade",
    Upgrade: "websocket",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": key,
    "Sec-WebSocket-Protocol": protocol,
  };
}

/** How a 101 answer falls short. */
export type WebSocketSwitchProblem =
  /** It switched, but not to a WebSocket with this subprotocol: another transport may do. */
  | { refused: string }
  /** It claims a WebSocket without proving it read the request (a broken server or proxy). */
  | { broken: string };

/**
 * Checks a 101 answer's headers (lower-case names, as `node:http` gives them) against the
 * request made with `key` asking for `protocol`; undefined when the WebSocket is open.
 */
export function webSocketSwitchProblem(
  headers: Record<string, string | string[] | undefined>,
  key: string,
  protocol: string,
): WebSocketSwitchProblem | undefined {
  const upgrade = String(headers["upgrade"] ?? "").toLowerCase();
  if (upgrade !== "websocket") return { refused: `the server switched to "${upgrade}"` };
  if (headers["sec-websocket-accept"] !== webSocketAccept(key)) {
    return { broken: "the server's Sec-WebSocket-Accept does not match the key sent" };
  }
  const chosen = headers["sec-websocket-protocol"];
  if (chosen !== protocol) {
    return {
      refused: `the server did not accept the ${protocol} subprotocol (it chose "${chosen ?? ""}")`,
    };
  }
  return undefined;
}
