/**
 * The options of one HTTP request to the API server — a list, a watch, a port-forward upgrade —
 * in the shape `node:http(s)` and `ws` take: the kubeconfig's credentials as headers, and the
 * TLS dial.
 *
 * Credentials are built again for every request (api_access.ts), so credential plugins and OIDC
 * renew their tokens. The TLS dial is a {@link denoTlsConnector}, because only that socket stops
 * reading when a port-forward session pauses (see deno_tls_socket.ts); through the cluster's
 * `proxy-url` it runs over the proxy's tunnel (proxy_tunnel.ts). What `Deno`'s TLS cannot
 * express — `insecure-skip-tls-verify`, or a `tls-server-name` other than the host together
 * with a client certificate — keeps `node:tls`, with a warning that a pod streaming into a
 * connection the app does not read is then bounded no longer by the kernel but by memory.
 */
// @ts-types="@types/ws"
import type WebSocket from "ws";
import type { ApiAccess } from "./api_access.ts";
import { denoTlsConnector } from "./deno_tls_socket.ts";
import { openProxyTunnel, parseProxyUrl, ProxyUrlError } from "./proxy_tunnel.ts";

/** How requests are dialled. */
export interface ApiConnectionOptions {
  /** How long the connection and the request's answer may take (ms). */
  handshakeTimeoutMs: number;
  /** Hears, once per call, why `node:tls` was kept (callers deduplicate). */
  warn?: (message: string) => void;
  /**
   * Sets TCP_NODELAY on the TCP socket with this local port (see deno_tls_socket.ts): the OS
   * call lives in ffi/, which the caller owns.
   */
  noDelay?: (localPort: number) => Promise<unknown>;
}

/** The `node:https` / `ws` options of one request (only those set here). */
export type ApiRequestOptions = Omit<WebSocket.ClientOptions, "headers"> & {
  headers?: Record<string, string | string[]>;
  ca?: string;
  cert?: string;
  key?: string;
  servername?: string;
  rejectUnauthorized?: boolean;
};

/** A configuration this client cannot dial at all; one line naming what to change. */
export class ApiConnectionError extends Error {}

/** The cluster's proxy, if it names one; a URL that cannot be used is this client's error. */
function proxyOf(url: string | undefined) {
  try {
    return url ? parseProxyUrl(url) : undefined;
  } catch (error) {
    throw error instanceof ProxyUrlError ? new ApiConnectionError(error.message) : error;
  }
}

/** Builds the options; see the module comment. */
export async function apiRequestOptions(
  access: ApiAccess,
  options: ApiConnectionOptions,
): Promise<ApiRequestOptions> {
  const { headers, cert, key } = await access.credentials();
  const request: ApiRequestOptions = { handshakeTimeout: options.handshakeTimeoutMs, headers };
  const cluster = access.cluster;
  if (!cluster.server.startsWith("https:")) return request;
  const ca = access.certificateAuthority();
  const serverName = cluster["tls-server-name"];
  const host = new URL(cluster.server).hostname.replace(/^\[|\]$/g, "");
  const proxy = proxyOf(cluster["proxy-url"]);
  const weaker = "reading from the API server cannot pause inside node:tls, so a pod streaming " +
    "into a connection the app does not read is held in memory instead of by TCP";
  /** `what` goes through node:tls: `why` Deno's TLS cannot, and the `fix` if there is one. */
  const nodeTls = (what: string, why: string, fix = ""): ApiRequestOptions => {
    if (proxy) {
      throw new ApiConnectionError(
        `cluster "${cluster.name}": proxy-url cannot be combined with ${what} (${why})`,
      );
    }
    options.warn?.(`${what} is dialled with node:tls (${why}): ${weaker}${fix && `; ${fix}`}`);
    return {
      ...request,
      ...(ca ? { ca } : {}),
      ...(cert && key ? { cert, key } : {}),
      ...(serverName ? { servername: serverName } : {}),
      ...(cluster["insecure-skip-tls-verify"] ? { rejectUnauthorized: false } : {}),
    };
  };
  if (cluster["insecure-skip-tls-verify"]) {
    return nodeTls(
      "insecure-skip-tls-verify",
      "Deno's TLS cannot skip verification per connection",
      "set certificate-authority(-data) instead",
    );
  }
  if (serverName && serverName !== host && cert) {
    return nodeTls(
      "tls-server-name with a client certificate",
      "Deno's TLS sends a client certificate only when the server name is the host",
    );
  }
  if (proxy && cert) {
    throw new ApiConnectionError(
      `cluster "${cluster.name}": proxy-url with a client certificate is not supported; ` +
        "use a token or a credential plugin through the proxy",
    );
  }
  const connect = denoTlsConnector({
    caCerts: ca ? [ca] : undefined,
    cert,
    key,
    noDelay: options.noDelay,
    tunnel: proxy
      ? (hostname, port) =>
        openProxyTunnel(proxy, hostname, port, { timeoutMs: options.handshakeTimeoutMs })
      : undefined,
  });
  return {
    ...request,
    ...(serverName ? { servername: serverName } : {}),
    createConnection: connect as unknown as WebSocket.ClientOptions["createConnection"],
  };
}
