/**
 * HTTP/1.1 responses on the wire (RFC 9112 §4, §6): a status line and header fields, and the
 * plain-text answers the proxy front and the API server give themselves. Every one closes the
 * connection after it (`connection: close`): neither server reads a second request.
 */
import { concatBytes } from "../stream/concat_bytes.ts";

/** Reason phrases of the statuses k8stun's servers send (RFC 9110 §15). */
const REASONS: Record<number, string> = {
  200: "OK",
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  407: "Proxy Authentication Required",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
};

const encoder = new TextEncoder();

/** The status line and `fields`, then the empty line that ends the head. */
export function responseHead(status: number, fields: Iterable<[string, string]>): Uint8Array {
  const lines = [`HTTP/1.1 ${status} ${REASONS[status] ?? "Status"}`];
  for (const [name, value] of fields) lines.push(`${name}: ${value}`);
  return encoder.encode(`${lines.join("\r\n")}\r\n\r\n`);
}

/** A whole response with a plain-text body (a newline is added when missing). */
export function textResponse(
  status: number,
  message: string,
  headers: Record<string, string> = {},
): Uint8Array {
  const body = encoder.encode(message.endsWith("\n") ? message : `${message}\n`);
  const head = responseHead(status, [
    ["content-type", "text/plain; charset=utf-8"],
    ["content-length", String(body.length)],
    ["connection", "close"],
    ...Object.entries(headers),
  ]);
  return concatBytes([head, body]);
}
