/**
 * The `ws` client options for a WebSocket to the API server (the SPDY tunnel and v4 connections):
 * the kubeconfig's credentials, and the TLS dial.
 *
 * Credentials come from client-node's `applyToHTTPSOptions`, run again for every session or v4
 * connection, so exec plugins and OIDC refresh their tokens and the Authorization header (or
 * basic auth, impersonation) is exactly what client-node would send. Its TLS material (CA, client
 * certificate and key, `tls-server-name`) is then moved onto a {@link denoTlsConnector} instead
 * of the `node:tls` agent it builds, because only that socket stops reading when the session
 * pauses (see deno_tls_socket.ts). Configurations `Deno.connectTls` cannot express keep the
 * `node:tls` agent, with a warning that a pod streaming into a connection the app does not read
 * is then bounded by the kernel no longer but by memory.
 */
import type { KubeConfig } from "@kubernetes/client-node";
// @ts-types="@types/ws"
import type WebSocket from "ws";
import { denoTlsConnector } from "../../core/k8s/deno_tls_socket.ts";
import { setConnectionNoDelay } from "../../ffi/linux/socket_nodelay.ts";

/** The kubeconfig's TLS settings as `applyToHTTPSOptions` leaves them (Node option names). */
interface NodeTlsOptions {
  agent?: unknown;
  ca?: Uint8Array;
  cert?: Uint8Array;
  key?: Uint8Array;
  servername?: string;
  rejectUnauthorized?: boolean;
}

/**
 * Builds the options. `warn` hears, once per call, why the `node:tls` path was kept (callers
 * deduplicate).
 */
export async function apiServerSocketOptions(
  kubeConfig: KubeConfig,
  handshakeTimeoutMs: number,
  warn: (message: string) => void = () => {},
): Promise<WebSocket.ClientOptions> {
  const options: WebSocket.ClientOptions & NodeTlsOptions = {
    handshakeTimeout: handshakeTimeoutMs,
  };
  await kubeConfig.applyToHTTPSOptions(options);
  const cluster = kubeConfig.getCurrentCluster();
  if (!cluster?.server.startsWith("https:")) return options;
  const weaker = "reading from the API server cannot pause inside node:tls, so a pod streaming " +
    "into a connection the app does not read is held in memory instead of by TCP";
  if (cluster.proxyUrl) {
    warn(`the kubeconfig's proxy-url is dialled with node:tls: ${weaker}`);
    return options;
  }
  if (options.rejectUnauthorized === false) {
    warn(
      `insecure-skip-tls-verify is set, which Deno's TLS cannot do per connection: ${weaker}; ` +
        "set certificate-authority(-data) instead",
    );
    return options;
  }
  const text = (bytes?: Uint8Array) => bytes && new TextDecoder().decode(bytes);
  const serverName = options.servername;
  const host = new URL(cluster.server).hostname.replace(/^\[|\]$/g, "");
  if (serverName && serverName !== host && options.cert) {
    warn(
      `tls-server-name with a client certificate is dialled with node:tls (Deno's TLS sends a ` +
        `client certificate only when the server name is the host): ${weaker}`,
    );
    return options;
  }
  const connect = denoTlsConnector({
    caCerts: options.ca ? [text(options.ca)!] : undefined,
    cert: text(options.cert),
    key: text(options.key),
    noDelay: Deno.build.os === "linux" ? setConnectionNoDelay : undefined,
  });
  const { agent: _agent, ca: _ca, cert: _cert, key: _key, ...rest } = options;
  return {
    ...rest,
    createConnection: connect as unknown as WebSocket.ClientOptions["createConnection"],
  };
}
