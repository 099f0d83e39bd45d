/**
 * The HTTP proxy front: `CONNECT host:port` tunnels (RFC 9110 §9.3.6), absolute-form requests
 * (`GET http://svc.ns/…`, RFC 9112 §3.2.2) forwarded in origin form with `Connection: close`,
 * `407` when credentials are required, and the PAC file at `/proxy.pac` (behind the same
 * credentials).
 */
import type { FlowRequest } from "../../mod.ts";
import type { BufferedConn } from "../stream/buffered_conn.ts";
import type { ProxyAuth } from "./socks5.ts";
import { readRequestHead } from "../http1/request_head.ts";

const MAX_HEAD = 32 * 1024;

/** What a request head asks for. */
export type HttpProxyRequest =
  | { kind: "connect"; flow: FlowRequest }
  | { kind: "forward"; flow: FlowRequest; head: Uint8Array }
  | { kind: "pac" }
  | { kind: "error"; status: number; message: string; headers?: Record<string, string> };

/** Reads and interprets one request head. */
export async function readProxyRequest(
  reader: BufferedConn,
  auth: ProxyAuth | undefined,
  source: { address: string; port: number },
): Promise<HttpProxyRequest> {
  const head = await readRequestHead(reader, MAX_HEAD);
  if (!("method" in head)) return { kind: "error", ...head };
  const { method, target, version, fields, lines: headerLines } = head;
  const credentials = (name: string) => fields.find(([k]) => k === name)?.[1] ?? "";
  const expected = auth && basicCredentials(auth);
  if (method === "GET" && (target === "/proxy.pac" || target === "/")) {
    // The PAC file names the cluster's namespaces: it takes the proxy's credentials too. A
    // browser fetches it from us as an origin server, so the challenge is 401 (RFC 9110 §11.6.1)
    // and either header is accepted.
    const given = [credentials("authorization"), credentials("proxy-authorization")];
    if (expected && !given.includes(expected)) {
      return {
        kind: "error",
        status: 401,
        message: "the PAC file needs the proxy's credentials",
        headers: { "www-authenticate": 'Basic realm="k8stun"' },
      };
    }
    return { kind: "pac" };
  }
  if (expected && credentials("proxy-authorization") !== expected) {
    return {
      kind: "error",
      status: 407,
      message: "proxy authentication required",
      headers: { "proxy-authenticate": 'Basic realm="k8stun"' },
    };
  }
  if (method === "CONNECT") {
    const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(target);
    if (!m) return { kind: "error", status: 400, message: "CONNECT needs host:port" };
    return { kind: "connect", flow: flowFor(m[1], Number(m[2]), source) };
  }
  let url: URL;
  try {
    url = new URL(target);
  } catch {
    return { kind: "error", status: 400, message: "a proxy request needs an absolute URL" };
  }
  if (url.protocol !== "http:") {
    return {
      kind: "error",
      status: 400,
      message: `only http:// is forwarded (use CONNECT for ${url.protocol})`,
    };
  }
  const kept = headerLines.filter((l) => !/^(proxy-[^:]*|connection|keep-alive):/i.test(l));
  const rewritten = [
    `${method} ${url.pathname}${url.search} ${version}`,
    ...kept,
    "Connection: close",
    "",
    "",
  ]
    .join("\r\n");
  return {
    kind: "forward",
    flow: flowFor(url.hostname, Number(url.port || 80), source),
    head: new TextEncoder().encode(rewritten),
  };
}

/** `Basic <base64(user:password)>` (RFC 7617 §2, UTF-8 as its §2.1 charset). */
function basicCredentials(auth: ProxyAuth): string {
  const bytes = new TextEncoder().encode(`${auth.username}:${auth.password}`);
  return `Basic ${btoa(String.fromCharCode(...bytes))}`;
}

function flowFor(
  host: string,
  port: number,
  source: { address: string; port: number },
): FlowRequest {
  const isAddress = /^\d+\.\d+\.\d+\.\d+$/.test(host);
  return {
    ...(isAddress ? { address: host } : { name: host }),
    port,
    protocol: "tcp",
    front: "http",
    source,
  };
}
