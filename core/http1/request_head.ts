/**
 * An HTTP/1.x request head (RFC 9112 §2.1, §3, §5): the request line and the header fields up to
 * the empty line, read from a connection under its handshake deadline. Shared by the HTTP proxy
 * front and the API server; each decides what the request means.
 */
import { type BufferedConn, LimitExceeded } from "../stream/buffered_conn.ts";

/** A request line and its header fields, as sent. */
export interface RequestHead {
  method: string;
  /** The request target, as sent (origin form `/path?q`, absolute form, `host:port`…). */
  target: string;
  /** `HTTP/1.0` or `HTTP/1.1`. */
  version: string;
  /** Header fields in order: the name lower-cased, the value trimmed (RFC 9112 §5.1). */
  fields: (readonly [name: string, value: string])[];
  /** The header lines as sent, for a front that passes the request on. */
  lines: string[];
}

const END_OF_HEAD = new TextEncoder().encode("\r\n\r\n");
/** Field names are tokens (RFC 9110 §5.1, §5.6.2). */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** Field values hold no control character but tab (RFC 9110 §5.5). */
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\uffff]*$/;

/**
 * Reads one request head of at most `limit` bytes: the head, or why it is not one (`status`
 * 400 for a malformed head, 431 for one longer than `limit`). Throws when the connection ends or
 * its deadline passes first.
 */
export async function readRequestHead(
  reader: BufferedConn,
  limit: number,
): Promise<RequestHead | { status: 400 | 431; message: string }> {
  let bytes: Uint8Array;
  try {
    bytes = await reader.readUntil(END_OF_HEAD, limit);
  } catch (error) {
    if (error instanceof LimitExceeded) {
      return { status: 431, message: `request head larger than ${limit} bytes` };
    }
    throw error;
  }
  const head = parseRequestHead(new TextDecoder().decode(bytes.subarray(0, -END_OF_HEAD.length)));
  return head ?? { status: 400, message: "malformed request head" };
}

/** Parses the text of a head (without its final empty line); undefined when malformed. */
export function parseRequestHead(text: string): RequestHead | undefined {
  const [requestLine, ...lines] = text.split("\r\n");
  const parts = requestLine.split(" ");
  if (parts.length !== 3) return undefined;
  const [method, target, version] = parts;
  if (!TOKEN.test(method) || target === "" || !/^HTTP\/1\.[01]$/.test(version)) return undefined;
  const fields: (readonly [string, string])[] = [];
  for (const line of lines) {
    const colon = line.indexOf(":");
    const name = line.slice(0, colon);
    // No whitespace before the colon, no obsolete line folding (RFC 9112 §5.1, §5.2).
    const value = line.slice(colon + 1).trim();
    if (colon <= 0 || !TOKEN.test(name) || !FIELD_VALUE.test(value)) return undefined;
    fields.push([name.toLowerCase(), value]);
  }
  return { method, target, version, fields, lines };
}
