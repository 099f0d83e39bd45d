/**
 * The simulated API server's HTTP layer: authentication (bearer token, 401 Status), discovery,
 * list and watch of namespaces, services, pods and endpointslices (resource versions, bookmarks,
 * 410 after compaction, label and field selectors, pages with `limit` and `continue`), writes
 * (writes.ts), and
 * `pods/{name}/portforward` with the API server's check order, upgraded to the v4 WebSocket
 * protocol.
 */
import { checkPortForward } from "./portforward/request.ts";
import { injectedFailure, status } from "./status.ts";
import type { SimFaults } from "./faults.ts";
import { handleSimWrite, type SimPods } from "./writes.ts";
import { type Kind, kindInfo, type KubeObject, type SimState, type WatchEvent } from "./state.ts";

/** What the HTTP layer needs. */
export interface SimServerContext {
  state: SimState;
  faults: SimFaults;
  token: string;
  /** Connects to a pod's container port (the "kubelet" side). */
  dialPodPort(namespace: string, pod: string, port: number): Promise<Deno.Conn>;
  /** Open watch streams, so tests can drop them. */
  watches: Set<() => void>;
  /** Whether WebSocket offers of `SPDY/3.1+portforward.k8s.io` are tunnelled (1.31+ default). */
  tunnel: boolean;
  /** Re-frame the tunnel's bytes at random (tests of message-boundary handling). */
  refragment?: boolean;
  /** Port-forward upgrades accepted, by protocol (tests check session reuse with it). */
  upgrades: Map<string, number>;
  /** Starts and stops created and deleted pods' servers. */
  pods: SimPods;
}

const encoder = new TextEncoder();

const ROUTES: { pattern: RegExp; kind: Kind; namespaced: boolean }[] = [
  { pattern: /^\/api\/v1\/namespaces(?:\/([^/]+))?$/, kind: "namespaces", namespaced: false },
  {
    pattern: /^\/api\/v1\/(?:namespaces\/([^/]+)\/)?services(?:\/([^/]+))?$/,
    kind: "services",
    namespaced: true,
  },
  {
    pattern: /^\/api\/v1\/(?:namespaces\/([^/]+)\/)?pods(?:\/([^/]+)(?:\/(status))?)?$/,
    kind: "pods",
    namespaced: true,
  },
  {
    pattern:
      /^\/apis\/discovery\.k8s\.io\/v1\/(?:namespaces\/([^/]+)\/)?endpointslices(?:\/([^/]+))?$/,
    kind: "endpointslices",
    namespaced: true,
  },
];

/** Handles one request. */
export async function handleSimRequest(request: Request, ctx: SimServerContext): Promise<Response> {
  const url = new URL(request.url);
  if (ctx.faults.delayMs > 0) await new Promise((r) => setTimeout(r, ctx.faults.delayMs));
  const auth = request.headers.get("authorization") ?? "";
  if (auth !== `Bearer ${ctx.token}`) return status(401, "Unauthorized", "Unauthorized");
  const injected = ctx.faults.takeFailure(url.pathname);
  if (injected) return injectedFailure(injected, url.pathname);

  if (url.pathname.endsWith("/portforward")) {
    const checked = checkPortForward(request, ctx);
    return checked instanceof Response
      ? checked
      : status(400, "BadRequest", "Upgrade request required");
  }
  if (request.method === "GET") {
    const discovery = discoveryDocument(url.pathname);
    if (discovery) return json(discovery);
  }
  for (const route of ROUTES) {
    const match = route.pattern.exec(url.pathname);
    if (!match) continue;
    const [namespace, name] = route.namespaced ? [match[1], match[2]] : [undefined, match[1]];
    if (request.method !== "GET") {
      return handleSimWrite(
        {
          method: request.method,
          kind: route.kind,
          namespace,
          name,
          subresource: route.namespaced ? match[3] : undefined,
          url,
          contentType: (request.headers.get("content-type") ?? "").split(";")[0].trim()
            .toLowerCase(),
          body: await request.text(),
        },
        ctx.state,
        ctx.pods,
      );
    }
    if (name !== undefined) {
      const object = ctx.state.get(route.kind, namespace, name);
      return object
        ? json(object)
        : status(404, "NotFound", `${route.kind} "${name}" not found`, { name, kind: route.kind });
    }
    if (url.searchParams.get("watch") === "true" || url.searchParams.get("watch") === "1") {
      return watch(route.kind, namespace, url, ctx);
    }
    const items = select(ctx.state.list(route.kind, namespace), url).map(withoutTypeMeta);
    const info = kindInfo(route.kind);
    const page = pageOf(items, url, ctx.state);
    if (page instanceof Response) return page;
    return json({ kind: `${info.kind}List`, apiVersion: info.apiVersion, ...page });
  }
  return status(404, "NotFound", "the server could not find the requested resource");
}

/**
 * The page of `items` a list request asks for: all of them without `limit`; else `limit` from
 * where its `continue` token points, with a token for the rest. A token names the version its
 * list started at, which every page reports; one from before a compaction is refused with 410
 * Expired, as the API server refuses a continue token whose snapshot etcd compacted.
 */
function pageOf(
  items: Record<string, unknown>[],
  url: URL,
  state: SimState,
): Response | { metadata: Record<string, unknown>; items: Record<string, unknown>[] } {
  const limit = Number(url.searchParams.get("limit") ?? 0);
  const token = url.searchParams.get("continue");
  if (!(limit > 0) || !Number.isInteger(limit)) {
    return { metadata: { resourceVersion: String(state.resourceVersion) }, items };
  }
  let start = 0;
  let rv = state.resourceVersion;
  if (token) {
    let parsed: { rv?: unknown; start?: unknown };
    try {
      parsed = JSON.parse(atob(token));
    } catch {
      return status(400, "BadRequest", "continue key is not valid: illegal base64 data");
    }
    if (typeof parsed.rv !== "number" || typeof parsed.start !== "number") {
      return status(400, "BadRequest", "continue key is not valid");
    }
    if (parsed.rv < state.compactedThrough) {
      return status(
        410,
        "Expired",
        "The provided continue parameter is too old to display a consistent list result. " +
          "You can start a new list without the continue parameter.",
      );
    }
    [rv, start] = [parsed.rv, parsed.start];
  }
  const end = start + limit;
  const metadata: Record<string, unknown> = { resourceVersion: String(rv) };
  if (end < items.length) {
    metadata.continue = btoa(JSON.stringify({ rv, start: end }));
    metadata.remainingItemCount = items.length - end;
  }
  return { metadata, items: items.slice(start, end) };
}

function json(body: unknown): Response {
  return new Response(JSON.stringify(body) + "\n", {
    headers: { "content-type": "application/json" },
  });
}

function withoutTypeMeta(object: KubeObject): Record<string, unknown> {
  const { kind: _kind, apiVersion: _apiVersion, ...rest } = object;
  return rest;
}

/** `labelSelector` (equality terms) and `fieldSelector` (`metadata.name`, `metadata.namespace`). */
function select(objects: KubeObject[], url: URL): KubeObject[] {
  const labels = parseTerms(url.searchParams.get("labelSelector"));
  const fields = parseTerms(url.searchParams.get("fieldSelector"));
  return objects.filter((o) =>
    labels.every(([k, op, v]) => (o.metadata.labels?.[k] === v) === (op === "=")) &&
    fields.every(([k, op, v]) => {
      const actual = k === "metadata.name"
        ? o.metadata.name
        : k === "metadata.namespace"
        ? o.metadata.namespace
        : undefined;
      return (actual === v) === (op === "=");
    })
  );
}

function parseTerms(selector: string | null): [string, "=" | "!=", string][] {
  if (!selector) return [];
  return selector.split(",").map((term) => {
    const m = /^\s*([^!=\s]+)\s*(==|=|!=)\s*([^\s]*)\s*$/.exec(term);
    if (!m) return [term, "=", ""];
    return [m[1], m[2] === "!=" ? "!=" : "=", m[3]];
  });
}

function watch(
  kind: Kind,
  namespace: string | undefined,
  url: URL,
  ctx: SimServerContext,
): Response {
  const fromParam = url.searchParams.get("resourceVersion");
  const from = fromParam === null || fromParam === "" || fromParam === "0"
    ? undefined
    : Number(fromParam);
  const bookmarks = url.searchParams.get("allowWatchBookmarks") === "true";
  const timeoutSeconds = Number(url.searchParams.get("timeoutSeconds") ?? "0");
  const matches = (e: WatchEvent) =>
    e.kind === kind && (namespace === undefined || e.object.metadata.namespace === namespace) &&
    select([e.object], url).length === 1;
  let stop = () => {};
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      const send = (type: string, object: unknown) => {
        try {
          controller.enqueue(encoder.encode(JSON.stringify({ type, object }) + "\n"));
        } catch {
          stop();
        }
      };
      const timers: ReturnType<typeof setTimeout>[] = [];
      stop = () => {
        unsubscribe();
        for (const t of timers) clearTimeout(t), clearInterval(t);
        ctx.watches.delete(stop);
        try {
          controller.close();
        } catch {
          // closed already
        }
      };
      // Subscribe first so nothing between the replay and live events is lost.
      const live: WatchEvent[] = [];
      let replaying = true;
      const unsubscribe = ctx.state.subscribe((e) => {
        if (!matches(e)) return;
        if (replaying) live.push(e);
        else send(e.type, e.object);
      });
      ctx.watches.add(stop);
      if (from !== undefined && !Number.isNaN(from)) {
        const history = ctx.state.eventsSince(from);
        if (history === undefined) {
          send("ERROR", {
            kind: "Status",
            apiVersion: "v1",
            metadata: {},
            status: "Failure",
            message: `too old resource version: ${from} (${ctx.state.compactedThrough})`,
            reason: "Expired",
            code: 410,
          });
          stop();
          return;
        }
        for (const e of history) if (matches(e)) send(e.type, e.object);
      } else {
        for (const o of select(ctx.state.list(kind, namespace), url)) send("ADDED", o);
      }
      replaying = false;
      for (const e of live) send(e.type, e.object);
      if (bookmarks) {
        timers.push(
          setInterval(() => send("BOOKMARK", bookmark(kind, ctx.state.resourceVersion)), 5000),
        );
      }
      if (timeoutSeconds > 0) timers.push(setTimeout(stop, timeoutSeconds * 1000));
    },
    cancel() {
      stop();
    },
  });
  return new Response(body, {
    headers: { "content-type": "application/json", "transfer-encoding": "chunked" },
  });
}

/** A BOOKMARK object: type meta, the version, and the kind's zero-valued fields (docs/portforward.md §11). */
function bookmark(kind: Kind, rv: number): Record<string, unknown> {
  const base = { ...kindInfo(kind), metadata: { resourceVersion: String(rv) } };
  switch (kind) {
    case "endpointslices":
      return { ...base, addressType: "", endpoints: null, ports: null };
    case "pods":
      return { ...base, spec: { containers: null }, status: {} };
    default:
      return { ...base, spec: {}, status: {} };
  }
}

function discoveryDocument(path: string): unknown {
  switch (path) {
    case "/version":
      return { major: "1", minor: "37", gitVersion: "v1.37.2-k8stun-sim", platform: "simulated" };
    case "/api":
      return { kind: "APIVersions", versions: ["v1"], serverAddressByClientCIDRs: [] };
    case "/apis":
      return {
        kind: "APIGroupList",
        apiVersion: "v1",
        groups: [{
          name: "discovery.k8s.io",
          versions: [{ groupVersion: "discovery.k8s.io/v1", version: "v1" }],
          preferredVersion: { groupVersion: "discovery.k8s.io/v1", version: "v1" },
        }],
      };
    case "/api/v1":
      return {
        kind: "APIResourceList",
        groupVersion: "v1",
        resources: [
          resource("namespaces", "Namespace", false),
          resource("services", "Service", true),
          resource("pods", "Pod", true),
          {
            name: "pods/status",
            singularName: "",
            namespaced: true,
            kind: "Pod",
            verbs: ["get", "patch", "update"],
          },
          {
            name: "pods/portforward",
            singularName: "",
            namespaced: true,
            kind: "PodPortForwardOptions",
            verbs: ["create", "get"],
          },
        ],
      };
    case "/apis/discovery.k8s.io/v1":
      return {
        kind: "APIResourceList",
        apiVersion: "v1",
        groupVersion: "discovery.k8s.io/v1",
        resources: [resource("endpointslices", "EndpointSlice", true)],
      };
    default:
      return undefined;
  }
}

const SHORT_NAMES: Record<string, string[]> = {
  namespaces: ["ns"],
  services: ["svc"],
  pods: ["po"],
};

function resource(name: string, kind: string, namespaced: boolean) {
  return {
    name,
    singularName: kind.toLowerCase(),
    namespaced,
    kind,
    ...(SHORT_NAMES[name] ? { shortNames: SHORT_NAMES[name] } : {}),
    verbs: name === "endpointslices"
      ? ["get", "list", "watch"]
      : ["create", "delete", "get", "list", "patch", "update", "watch"],
  };
}
