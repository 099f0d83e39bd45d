/**
 * The kubeconfig cluster field `proxy-url`: k8stun reaches the API server through an HTTP proxy
 * (a CONNECT tunnel, RFC 9110 §9.3.6) or a SOCKS5 proxy (RFC 1928; RFC 1929 credentials), the
 * schemes kubectl takes except https:// (TLS to the proxy itself). The tunnel is a plain TCP
 * connection positioned just after the proxy's answer, so the caller runs TLS to the API server
 * over it with `Deno.startTls`, which takes only a `Deno.TcpConn`: nothing past the proxy's
 * answer may have been read from it.
 */
import { DialError, type DialFailure } from "../../mod.ts";
import { negotiate } from "../proxy/socks5_negotiate.ts";
import { oneLine } from "../peer_text.ts";

/** A proxy k8stun can tunnel through, as {@link parseProxyUrl} reads it from `proxy-url`. */
export interface ProxyEndpoint {
  scheme: "http" | "socks5";
  hostname: string;
  port: number;
  username?: string;
  password?: string;
}

/**
 * A proxy-url k8stun cannot use; the message is one line naming the URL (without its password)
 * and what to do.
 */
export class ProxyUrlError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ProxyUrlError";
  }
}

/** How long the proxy has, by default, to connect and answer. */
export const PROXY_TUNNEL_TIMEOUT_MS = 10_000;

/** The most an HTTP proxy's answer to CONNECT may take before its blank line. */
const MAX_RESPONSE_HEAD = 16 * 1024;

const FORM = "use http://[user:pass@]host[:port] or socks5://[user:pass@]host[:port]";

/**
 * Parses proxy-url: `http://[user:pass@]host[:port]` (port 80 by default), `socks5://` and
 * `socks5h://` (`[user:pass@]host[:port]`, port 1080 by default). Both SOCKS schemes send the
 * API server's name to the proxy, which resolves it, as kubectl does. https:// and every other
 * scheme are refused with a {@link ProxyUrlError}. Userinfo is percent-decoded (RFC 3986 §3.2.1).
 */
export function parseProxyUrl(url: string): ProxyEndpoint {
  const text = url.trim();
  const shown = redact(text);
  const fail = (what: string) => new ProxyUrlError(`proxy-url "${shown}" ${what}; ${FORM}`);
  let parsed: URL;
  try {
    parsed = new URL(text);
  } catch {
    throw fail("is not a URL");
  }
  const protocol = parsed.protocol.toLowerCase();
  let scheme: ProxyEndpoint["scheme"];
  let defaultPort: number;
  if (protocol === "http:") {
    scheme = "http";
    defaultPort = 80;
  } else if (protocol === "socks5:" || protocol === "socks5h:") {
    scheme = "socks5";
    defaultPort = 1080;
  } else if (protocol === "https:") {
    throw fail("asks for TLS to the proxy itself, which k8stun does not support");
  } else {
    throw fail(`has the scheme ${protocol.slice(0, -1)}, which k8stun does not support`);
  }
  // An opaque host of a non-special scheme keeps its brackets and its case; a connect wants
  // neither the brackets nor cares for the case.
  const hostname = parsed.hostname.replace(/^\[(.*)\]$/, "$1").toLowerCase();
  if (!hostname) throw fail("names no proxy host");
  if ((parsed.pathname !== "" && parsed.pathname !== "/") || parsed.search || parsed.hash) {
    throw fail("has a path, query or fragment, which a proxy address does not");
  }
  const port = parsed.port === "" ? defaultPort : Number(parsed.port);
  if (port === 0) throw fail("has port 0");
  let username: string | undefined;
  let password: string | undefined;
  try {
    username = parsed.username === "" ? undefined : decodeURIComponent(parsed.username);
    password = parsed.password === "" ? undefined : decodeURIComponent(parsed.password);
  } catch {
    throw fail("has a malformed percent-encoding in its user name or password");
  }
  if (scheme === "http" && username?.includes(":")) {
    // Basic credentials are user-id ":" password; a colon in the user-id would move the split.
    throw fail("has a colon in its user name, which Basic credentials cannot carry (RFC 7617 §2)");
  }
  if (scheme === "socks5") {
    const encoder = new TextEncoder();
    // RFC 1929 §2: each is one length byte, then the bytes.
    const longest = Math.max(
      encoder.encode(username ?? "").length,
      encoder.encode(password ?? "").length,
    );
    if (longest > 255) throw fail("has a user name or password over 255 bytes (RFC 1929 §2)");
  }
  const endpoint: ProxyEndpoint = { scheme, hostname, port };
  if (username !== undefined) endpoint.username = username;
  if (password !== undefined) endpoint.password = password;
  return endpoint;
}

/** `url` with the password in its userinfo, if any, replaced: for messages and logs. */
function redact(url: string): string {
  const start = /^[a-z][a-z0-9+.-]*:\/\//i.exec(url)?.[0].length ?? 0;
  const rest = url.slice(start);
  const authority = rest.slice(0, rest.search(/[/?#]|$/));
  const at = authority.lastIndexOf("@");
  const colon = authority.indexOf(":");
  if (at < 0 || colon < 0 || colon > at) return url;
  return url.slice(0, start + colon + 1) + "***" + url.slice(start + at);
}

/**
 * Connects to `host:port` through the proxy; resolves with the TCP connection (TCP_NODELAY on)
 * just after the proxy's answer; rejects with an Error whose message says which proxy refused and
 * why (HTTP status line, or SOCKS5 reply); closes the connection on failure. The whole exchange
 * is bounded by `timeoutMs` (default 10 000). A SOCKS5 proxy has at most 10 s to answer whatever
 * `timeoutMs`: the SOCKS5 handshake keeps its own deadline.
 */
export async function openProxyTunnel(
  proxy: ProxyEndpoint,
  host: string,
  port: number,
  options: { timeoutMs?: number } = {},
): Promise<Deno.TcpConn> {
  const timeoutMs = options.timeoutMs ?? PROXY_TUNNEL_TIMEOUT_MS;
  const bareHost = host.replace(/^\[(.*)\]$/, "$1");
  // The name goes into a request line or a SOCKS request as it is: nothing that could end it.
  if (!bareHost || /[\s/?#@\p{Cc}]/u.test(bareHost)) {
    throw new Error(`cannot ask a proxy for a tunnel to "${host}": not a host name or address`);
  }
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new Error(`cannot ask a proxy for a tunnel to port ${port} of ${host}: not a TCP port`);
  }
  const target = `${bareHost.includes(":") ? `[${bareHost}]` : bareHost}:${port}`;
  const name = `${proxy.scheme === "http" ? "HTTP" : "SOCKS5"} proxy ${
    proxy.hostname.includes(":") ? `[${proxy.hostname}]` : proxy.hostname
  }:${proxy.port}`;
  const abort = new AbortController();
  let conn: Deno.TcpConn | undefined;
  let expired = false;
  // One timer for the whole exchange: closing the socket fails the pending read or write at once.
  const timer = setTimeout(() => {
    expired = true;
    abort.abort();
    closeQuietly(conn);
  }, timeoutMs);
  try {
    try {
      conn = await Deno.connect({
        hostname: proxy.hostname,
        port: proxy.port,
        signal: abort.signal,
      });
    } catch (error) {
      if (expired) throw error;
      throw new Error(`cannot reach the ${name} for ${target}: ${(error as Error).message}`);
    }
    // The deadline can pass between the connect's completion and this line, with no socket to
    // close yet.
    if (expired) throw new Error("expired");
    // The TLS handshake that follows is a few small writes, each waiting on an answer.
    conn.setNoDelay(true);
    if (proxy.scheme === "http") {
      await httpConnect(conn, proxy, target, name);
    } else {
      await socksConnect(conn, proxy, bareHost, port, target, name);
    }
    if (expired) throw new Error("expired");
    return conn;
  } catch (error) {
    closeQuietly(conn);
    if (expired) {
      throw new Error(`the ${name} did not open a tunnel to ${target} within ${timeoutMs} ms`);
    }
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

/** RFC 9110 §9.3.6: CONNECT in authority form (RFC 9112 §3.2.3); any 2xx opens the tunnel. */
async function httpConnect(
  conn: Deno.TcpConn,
  proxy: ProxyEndpoint,
  target: string,
  name: string,
): Promise<void> {
  let request = `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n`;
  const credentials = proxy.username !== undefined || proxy.password !== undefined;
  if (credentials) {
    // RFC 7617 §2: Basic, base64 of user-id ":" password; UTF-8 as §2.1 allows.
    const pair = new TextEncoder().encode(`${proxy.username ?? ""}:${proxy.password ?? ""}`);
    request += `Proxy-Authorization: Basic ${btoa(String.fromCharCode(...pair))}\r\n`;
  }
  await writeAll(conn, new TextEncoder().encode(request + "\r\n"));
  const head = new ResponseHead(conn, name);
  for (;;) {
    const { status, line, surplus } = await head.next();
    // RFC 9110 §15.2: a client accepts interim answers before the final one.
    if (status >= 100 && status < 200 && status !== 101) continue;
    if (status < 200 || status > 299) {
      const hint = status !== 407
        ? ""
        : credentials
        ? "; the proxy refused the credentials in proxy-url"
        : "; the proxy wants credentials: put them in proxy-url as http://user:pass@host:port";
      throw new Error(`the ${name} refused CONNECT ${target}: ${line}${hint}`);
    }
    if (surplus > 0) {
      throw new Error(
        `the ${name} sent ${surplus} bytes after its answer (${line}) before the tunnel carried ` +
          `anything from us; it is not a CONNECT proxy k8stun can use`,
      );
    }
    return;
  }
}

/** Reads HTTP response heads (RFC 9112 §2.1) from a connection, with a bound on their size. */
class ResponseHead {
  readonly #buffer = new Uint8Array(MAX_RESPONSE_HEAD);
  #start = 0;
  #end = 0;

  constructor(readonly conn: Deno.Conn, readonly name: string) {}

  /** The next head's status and status line, and how many bytes came after it. */
  async next(): Promise<{ status: number; line: string; surplus: number }> {
    let scanned = this.#start;
    for (;;) {
      const end = headEnd(this.#buffer, scanned, this.#end);
      if (end >= 0) {
        const head = this.#buffer.subarray(this.#start, end);
        this.#start = end;
        const newline = head.indexOf(0x0a);
        const line = printable(new TextDecoder().decode(head.subarray(0, newline)));
        // RFC 9112 §4: HTTP-version SP status-code SP [ reason-phrase ].
        const status = /^HTTP\/1\.[01] ([1-9]\d\d)(?: |$)/.exec(line);
        if (!status) throw new Error(`the ${this.name} answered CONNECT with no HTTP: ${line}`);
        return { status: Number(status[1]), line, surplus: this.#end - this.#start };
      }
      // Back to where a head's end could still start: "\n\r\n" is three bytes.
      scanned = Math.max(this.#start, this.#end - 2);
      if (this.#end === this.#buffer.length) {
        throw new Error(
          `the ${this.name} answered CONNECT with a head over ${MAX_RESPONSE_HEAD} bytes`,
        );
      }
      const read = await this.conn.read(this.#buffer.subarray(this.#end));
      if (read === null) {
        const line = this.#end > this.#start
          ? `: ${
            printable(new TextDecoder().decode(this.#buffer.subarray(this.#start, this.#end)))
          }`
          : "";
        throw new Error(`the ${this.name} closed the connection before answering CONNECT${line}`);
      }
      this.#end += read;
    }
  }
}

/**
 * Where the head in `bytes[from, to)` ends: just past the empty line. A bare LF ends a line too
 * (RFC 9112 §2.2 lets a recipient take it for CRLF).
 */
function headEnd(bytes: Uint8Array, from: number, to: number): number {
  for (let i = from; i < to - 1; i++) {
    if (bytes[i] !== 0x0a) continue;
    if (bytes[i + 1] === 0x0a) return i + 2;
    if (bytes[i + 1] === 0x0d && i + 2 < to && bytes[i + 2] === 0x0a) return i + 3;
  }
  return -1;
}

/** The first line of what a peer sent, fit for an error message. */
function printable(text: string): string {
  return oneLine(text.split("\n")[0], 200);
}

/** What a SOCKS5 refusal means, by the classification of its reply code (RFC 1928 §6). */
const SOCKS_FAILURES: Record<DialFailure, string> = {
  refused: "the API server refused the connection",
  unreachable: "the proxy cannot reach the API server",
  timeout: "the proxy timed out",
  forbidden: "the proxy does not allow it (check the credentials in proxy-url)",
  error: "proxy failure",
};

async function socksConnect(
  conn: Deno.TcpConn,
  proxy: ProxyEndpoint,
  host: string,
  port: number,
  target: string,
  name: string,
): Promise<void> {
  // negotiate offers username/password (RFC 1929) only when a username is given.
  const credentials = proxy.username !== undefined || proxy.password !== undefined
    ? { username: proxy.username ?? "", password: proxy.password ?? "" }
    : {};
  let rest: Uint8Array;
  try {
    rest = await negotiate(conn, credentials, { kind: "host", host, port });
  } catch (error) {
    const why = error instanceof DialError ? ` (${SOCKS_FAILURES[error.reason]})` : "";
    throw new Error(
      `the ${name} refused the tunnel to ${target}: ${(error as Error).message}${why}`,
    );
  }
  if (rest.length > 0) {
    throw new Error(
      `the ${name} sent ${rest.length} bytes after its reply before the tunnel carried ` +
        `anything from us; it is not a SOCKS5 proxy k8stun can use`,
    );
  }
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let done = 0; done < bytes.length;) done += await conn.write(bytes.subarray(done));
}

function closeQuietly(conn: Deno.Conn | undefined): void {
  try {
    conn?.close();
  } catch {
    // closed already: by the deadline, or by the SOCKS5 handshake on its failure
  }
}
