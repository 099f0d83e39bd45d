/**
 * Who may talk to the HTTP API: a Host-header allow-list against DNS rebinding, and an optional
 * bearer token (docs/compatibility.md §2, docs/compatibility.md §3 D7).
 */

/** Access policy. */
export interface AccessPolicy {
  /** Extra host name allowed in the Host header (the `--http-host` value). */
  extraHost?: string;
  /** When set, requests need `Authorization: Bearer <token>` (or `?token=` on `/` and `/events`). */
  token?: string;
}

/** Why a request was refused, as an HTTP response. */
export type AccessDecision = { ok: true } | { ok: false; response: Response };

const LOOPBACK_HOSTS = new Set(["localhost", "127.0.0.1", "[::1]"]);

/**
 * Checks the Host header and the token. `Host: evil.test` gets 403 so that a page on a rebound
 * name cannot read the API; a missing or wrong token gets 401 with `WWW-Authenticate: Bearer`.
 */
export function checkAccess(request: Request, policy: AccessPolicy): AccessDecision {
  const host = hostName(request.headers.get("host") ?? "");
  if (!LOOPBACK_HOSTS.has(host) && host !== policy.extraHost?.toLowerCase()) {
    return {
      ok: false,
      response: new Response("forbidden: Host header is not a loopback name\n", { status: 403 }),
    };
  }
  if (policy.token === undefined) return { ok: true };
  const url = new URL(request.url);
  const header = request.headers.get("authorization") ?? "";
  const bearer = /^Bearer\s+(.+)$/i.exec(header)?.[1]?.trim();
  const queryAllowed = url.pathname === "/" || url.pathname === "/events";
  const presented = bearer ??
    (queryAllowed ? url.searchParams.get("token") ?? undefined : undefined);
  if (presented !== undefined && constantTimeEqual(presented, policy.token)) return { ok: true };
  return {
    ok: false,
    response: new Response("unauthorized: a bearer token is required\n", {
      status: 401,
      headers: { "www-authenticate": 'Bearer realm="k8stun"' },
    }),
  };
}

/** The host part of a Host header, lower-cased, without the port (`[::1]:8080` → `[::1]`). */
function hostName(header: string): string {
  const value = header.trim().toLowerCase();
  if (value.startsWith("[")) return value.slice(0, value.indexOf("]") + 1);
  const colon = value.lastIndexOf(":");
  return colon === -1 ? value : value.slice(0, colon);
}

function constantTimeEqual(a: string, b: string): boolean {
  const ea = new TextEncoder().encode(a);
  const eb = new TextEncoder().encode(b);
  let diff = ea.length ^ eb.length;
  for (let i = 0; i < Math.max(ea.length, eb.length); i++) diff |= (ea[i] ?? 0) ^ (eb[i] ?? 0);
  return diff === 0;
}

/** Replaces `token=…` in a URL for logs. */
export function redactToken(url: string): string {
  return url.replace(/([?&]token=)[^&]*/g, "$1REDACTED");
}
