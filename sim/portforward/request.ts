/**
 * The API server's side of a `pods/{name}/portforward` request before any protocol runs: the
 * checks in the API server's order (docs/portforward.md §1), then which transport the client gets
 * (a direct SPDY upgrade, SPDY tunnelled over a WebSocket, or a v4 channel WebSocket).
 */
import type { SimServerContext } from "../server.ts";
import { injectedFailure, status } from "../status.ts";
import type { PortForwardContext } from "./types.ts";

/** Marks a direct `Upgrade: SPDY/3.1` request (not a WebSocket). */
export const SPDY_DIRECT = "spdy/3.1 direct";

/** The tunnelled SPDY subprotocol (docs/portforward.md §7). */
export const SPDY_TUNNEL = "SPDY/3.1+portforward.k8s.io";

/** A port-forward request that passed every check, ready for the protocol engine. */
export interface AcceptedPortForward {
  ports: number[];
  /** The negotiated subprotocol ("" when the client offered none). */
  protocol: string;
  context: PortForwardContext;
}

/**
 * `pods/{name}/portforward`: checks in the API server's order (docs/portforward.md §1 item 2), then picks the v4
 * subprotocol: the first the client offered that the kubelet supports (docs/portforward.md §8).
 */
export function checkPortForward(
  request: Request,
  ctx: SimServerContext,
): AcceptedPortForward | Response {
  const url = new URL(request.url);
  const match = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)\/portforward$/.exec(url.pathname);
  if (!match) return status(404, "NotFound", "the server could not find the requested resource");
  const [, namespace, name] = match;
  const auth = request.headers.get("authorization") ?? "";
  if (auth !== `Bearer ${ctx.token}`) return status(401, "Unauthorized", "Unauthorized");
  const injected = ctx.faults.takeFailure(url.pathname);
  if (injected) return injectedFailure(injected, url.pathname);
  const rawPorts = url.searchParams.getAll("ports").flatMap((p) => p.split(","));
  const ports: number[] = [];
  for (const raw of rawPorts) {
    const n = Number(raw);
    if (!/^\d+$/.test(raw) || n > 65535) {
      return status(
        400,
        "BadRequest",
        `cannot convert to []int32: strconv.ParseUint: parsing "${raw}": invalid syntax`,
      );
    }
    ports.push(n);
  }
  const pod = ctx.state.pod(namespace, name);
  if (!pod) return status(404, "NotFound", `pods "${name}" not found`, { name, kind: "pods" });
  const upgrade = (request.headers.get("upgrade") ?? "").toLowerCase();
  const context = {
    namespace,
    pod: name,
    uid: pod.uid,
    dialPodPort: (port: number) => ctx.dialPodPort(namespace, name, port),
    stalls: (port: number) => ctx.faults.portForwardFault(namespace, name, port)?.kind === "stall",
  };
  // Direct SPDY upgrade (kubectl ≤ 1.30 and the fallback of newer ones, docs/portforward.md §2).
  if (upgrade === "spdy/3.1") {
    const version = request.headers.get("x-stream-protocol-version") ?? "";
    if (!version.split(",").map((v) => v.trim()).includes("portforward.k8s.io")) {
      return new Response(null, {
        status: 403,
        headers: { "x-accepted-stream-protocol-versions": "portforward.k8s.io" },
      });
    }
    return { ports: [], protocol: SPDY_DIRECT, context };
  }
  if (upgrade !== "websocket") {
    return status(400, "BadRequest", "Upgrade request required");
  }
  const offers = (request.headers.get("sec-websocket-protocol") ?? "").split(",")
    .map((s) => s.trim()).filter(Boolean);
  // KEP-4006: a WebSocket offering SPDY/3.1+…k8s.io is tunnelled; ports travel in stream headers.
  if (ctx.tunnel && offers.includes(SPDY_TUNNEL)) {
    return { ports: [], protocol: SPDY_TUNNEL, context };
  }
  if (ports.length === 0) return plain(400, 'query parameter "port" is required');
  if (ports.includes(0)) return plain(400, 'port "0" must be > 0');
  const offered = (request.headers.get("sec-websocket-protocol") ?? "").split(",")
    .map((s) => s.trim()).filter(Boolean);
  const protocol = offered.length === 0
    ? ""
    : offered.find((p) => p === "v4.channel.k8s.io" || p === "v4.base64.channel.k8s.io");
  if (protocol === undefined) {
    return new Response(null, { status: 403, headers: { connection: "close" } });
  }
  return { ports, protocol, context };
}

function plain(code: number, text: string): Response {
  return new Response(text, { status: code, headers: { "content-type": "text/plain" } });
}
