/**
 * Keeps a {@link ClusterStore} current from the Kubernetes API: for each resource a list (in
 * pages, paged_list.ts), then a watch from the list's resource version with bookmarks; a 410 Gone
 * (or ERROR event) re-lists that resource only (docs/portforward.md §11). Objects pass a shape
 * check before the store takes them (object_shape.ts). Failures back off like client-go's
 * reflector (backoff.ts) and resume from the last version seen, and a small request every few
 * seconds checks that the server still answers, so a black-holed connection is noticed even
 * when no watch fails. While the server is unreachable the store keeps serving its last view.
 * Scoped to all namespaces, or to the given ones when listing all is forbidden.
 */
import { type ApiAccess, CredentialError } from "../k8s/api_access.ts";
import { ApiConnectionError } from "../k8s/api_connection.ts";
import { ApiClient, ApiStatusError, type Watching } from "../k8s/api_client.ts";
import { logger } from "../log.ts";
import { NoTelemetry, type TelemetrySink } from "../telemetry.ts";
import { deadline } from "../deadline.ts";
import { Backoff, type BackoffOptions } from "./backoff.ts";
import { type ClusterState, type ClusterStateChange, Reachability } from "./reachability.ts";
import { ClusterStore, type KubeObject } from "./store.ts";
import { listInPages } from "./paged_list.ts";
import { objectName, type Resource, shapeProblem } from "./object_shape.ts";

const log = logger("cluster");
/** Misshapen objects remembered so each is reported once (past this many, memory starts over). */
const MAX_REPORTED_SHAPES = 1000;

/** The running list/watch loop; `store` is the {@link ClusterView} it keeps current. */
export interface ClusterSync {
  store: ClusterStore;
  /**
   * Resolves once every resource has been listed once; rejects with a {@link ClusterAccessError}
   * when that has not happened within the initial list timeout.
   */
  synced: Promise<void>;
  /** Whether the server answers and every resource is watched. */
  healthy(): boolean;
  /** What `/healthz` reports for the cluster. */
  state(): ClusterState;
  /** Why the cluster is unreachable (one line per failing list or watch). */
  errors(): string[];
  /** Calls `listener` when the cluster becomes unreachable or is back. */
  onStateChange(listener: (change: ClusterStateChange) => void): () => void;
  close(): void;
}

/** Options for {@link startClusterSync}. */
export interface ClusterSyncOptions {
  /** The API server and the credentials to use there. */
  access: ApiAccess;
  /** Sets TCP_NODELAY on a connection by local port (ffi/, owned by the caller; optional). */
  noDelay?: (localPort: number) => Promise<unknown>;
  /** Namespaces to fall back to when listing all is forbidden. */
  namespaces: string[];
  telemetry?: TelemetrySink;
  /** How long the first list of everything may take before start-up fails (default 15 s). */
  initialListTimeoutMs?: number;
  /** How long any one list, or a watch's first answer, may take (default 30 s). */
  requestTimeoutMs?: number;
  /** How often the server's liveness is checked (default 10 s; 0 turns it off). */
  probeIntervalMs?: number;
  /** Retry delays (tests shorten them). */
  backoff?: BackoffOptions;
  /** Objects per list request (default 500, paged_list.ts; tests make pages small). */
  listPageSize?: number;
}

/** Error from the API that a user must fix (credentials, RBAC, an unreachable server). */
export class ClusterAccessError extends Error {}

/** Starts listing and watching. */
export async function startClusterSync(options: ClusterSyncOptions): Promise<ClusterSync> {
  const store = new ClusterStore();
  const telemetry = options.telemetry ?? NoTelemetry;
  const server = options.access.server;
  const initialListTimeoutMs = options.initialListTimeoutMs ?? 15_000;
  const requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
  const api = new ApiClient(options.access, {
    handshakeTimeoutMs: requestTimeoutMs,
    noDelay: options.noDelay,
  });
  const reachability = new Reachability();
  const aborts = new Set<Watching>();
  let closed = false;
  const watching = new Map<string, boolean>();

  reachability.onChange((change) => {
    if (change.state === "unreachable") {
      log.warn(
        "the API server at {server} is unreachable ({error}); serving the last view of the cluster and retrying",
        { server, error: change.error },
      );
    } else if (change.outageMs !== undefined) {
      log.warn("the API server at {server} answers again after {seconds} s", {
        server,
        seconds: Math.round(change.outageMs / 100) / 10,
      });
    }
    telemetry.emit({ type: "cluster_state", state: change.state, error: change.error });
  });

  // One probe decides the scope: all namespaces, or only the configured ones.
  let scopes: (string | undefined)[] = [undefined];
  try {
    await deadline(
      api.get("/api/v1/namespaces?limit=1"),
      initialListTimeoutMs,
      () => new Error(`it did not answer within ${initialListTimeoutMs / 1000} s (--sync-timeout)`),
    );
  } catch (error) {
    const code = statusCode(error);
    if (code === 401) {
      throw new ClusterAccessError(
        `the API server at ${server} rejected the credentials of context "${options.access.context}" (401 Unauthorized)`,
      );
    }
    if (error instanceof CredentialError || error instanceof ApiConnectionError) {
      // Nothing was sent: the kubeconfig's credentials or connection settings are the problem.
      throw new ClusterAccessError(`context "${options.access.context}": ${describe(error)}`);
    }
    if (code !== 403) {
      throw new ClusterAccessError(`cannot reach the API server at ${server}: ${describe(error)}`);
    }
    scopes = options.namespaces;
    log.warn("listing all namespaces is forbidden; watching only {namespaces}", {
      namespaces: options.namespaces.join(", "),
    });
  }

  const list = (resource: Resource, namespace: string | undefined): Promise<KubeList> => {
    if (resource === "namespaces" && namespace) {
      // Only the one namespace may be readable: its object stands for the list.
      return api.get<unknown>(`/api/v1/namespaces/${namespace}`)
        .then((object) => ({ items: [object] }));
    }
    return listInPages<unknown>(
      (pathAndQuery) => api.get(pathAndQuery),
      path(resource, namespace)!,
      options.listPageSize,
    );
  };
  const path = (resource: Resource, namespace: string | undefined) => {
    const base = resource === "endpointslices" ? "/apis/discovery.k8s.io/v1" : "/api/v1";
    if (resource === "namespaces") return namespace ? undefined : "/api/v1/namespaces";
    return namespace ? `${base}/namespaces/${namespace}/${resource}` : `${base}/${resource}`;
  };
  /** Misshapen objects reported so far (each once; forgotten when there are too many). */
  const reported = new Set<string>();
  /** Whether `object` is fit for the store; a misshapen one is reported once and left out. */
  const wellShaped = (resource: Resource, object: unknown): object is KubeObject => {
    const problem = shapeProblem(resource, object);
    if (problem === undefined) return true;
    telemetry.emit({ type: "object_refused", resource });
    const report = `${resource} ${objectName(object)}: ${problem}`;
    if (!reported.has(report)) {
      if (reported.size >= MAX_REPORTED_SHAPES) reported.clear();
      reported.add(report);
      log.warn("the API server sent a misshapen object, left out: {report}", { report });
    }
    return false;
  };
  const apply = (resource: Resource, type: string, object: KubeObject) => {
    const deleted = type === "DELETED";
    switch (resource) {
      case "namespaces":
        return deleted ? store.deleteNamespace(object) : store.applyNamespace(object);
      case "services":
        return deleted ? store.deleteService(object) : store.applyService(object);
      case "pods":
        return deleted ? store.deletePod(object) : store.applyPod(object);
      case "endpointslices":
        return deleted ? store.deleteEndpointSlice(object) : store.applyEndpointSlice(object);
    }
  };

  /** One watch, from `rv`, until it ends: how it ended decides what the loop does next. */
  const watchOnce = (name: string, watchPath: string, rv: string, resource: Resource) =>
    new Promise<WatchEnd>((resolve) => {
      let settled = false;
      let expired = false;
      let events = 0;
      let latest = rv;
      let open: Watching | undefined;
      const finish = (end: WatchEnd) => {
        if (settled) return;
        settled = true;
        clearTimeout(unanswered);
        watching.set(name, false);
        resolve(end);
      };
      // A server that accepts the connection but never answers must not hold the loop forever.
      const unanswered = setTimeout(
        () => finish({ kind: "failed", error: `no answer within ${requestTimeoutMs / 1000} s` }),
        requestTimeoutMs,
      );
      const query = `?watch=1&resourceVersion=${encodeURIComponent(rv)}` +
        "&allowWatchBookmarks=true&timeoutSeconds=300";
      api.watch(`${watchPath}${query}`, ({ type, object }) => {
        events++;
        if (type === "ERROR") {
          if (object?.code === 410) expired = true;
          return;
        }
        const version = object?.metadata?.resourceVersion;
        if (typeof version === "string") latest = version;
        if (type !== "BOOKMARK" && wellShaped(resource, object)) apply(resource, type, object);
      }, (error) => {
        if (open) aborts.delete(open);
        if (expired) finish({ kind: "expired", rv: latest });
        else if (error) finish({ kind: "failed", error: describe(error) });
        else finish({ kind: "ended", rv: latest, events });
      }).then((opened) => {
        open = opened;
        if (settled) return opened.abort();
        clearTimeout(unanswered);
        watching.set(name, true);
        reachability.succeeded(name);
        aborts.add(opened);
      }, (error) => {
        if (statusCode(error) === 410) finish({ kind: "expired", rv: latest });
        else finish({ kind: "failed", error: describe(error), status: statusCode(error) });
      });
    });

  const run = async (resource: Resource, namespace: string | undefined, listed: () => void) => {
    const name = `${resource}${namespace ? `/${namespace}` : ""}`;
    const backoff = new Backoff(options.backoff);
    let rv: string | undefined;
    let first = true;
    const failed = async (error: string, status?: number) => {
      watching.set(name, false);
      // A status below 500 is an answer (RBAC, a bad request): the server is there.
      if (status === undefined || status >= 500) reachability.failed(name, error);
      else reachability.succeeded(name);
      const ms = backoff.next();
      log.debug("{name}: {error}; retrying in {ms} ms", { name, error, ms: Math.round(ms) });
      await sleep(ms);
    };
    while (!closed) {
      if (rv === undefined) {
        try {
          const result = await deadline(
            list(resource, namespace),
            requestTimeoutMs,
            () => new Error(`no answer to the list within ${requestTimeoutMs / 1000} s`),
          );
          if (closed) return;
          const items = result.items.filter((item) => wellShaped(resource, item));
          store.replace(resource, items, namespace);
          rv = result.resourceVersion;
          reachability.succeeded(name);
          if (first) {
            first = false;
            listed();
          }
        } catch (error) {
          if (closed) return;
          await failed(describe(error), statusCode(error));
          continue;
        }
      }
      const watchPath = path(resource, namespace);
      if (!watchPath || rv === undefined) {
        await sleep(30_000); // a single namespace's object: re-read it now and then
        rv = undefined;
        continue;
      }
      const end = await watchOnce(name, watchPath, rv, resource);
      if (closed) return;
      telemetry.emit({ type: "watch_restart", resource });
      switch (end.kind) {
        case "expired":
          log.info("watch of {name} expired (410 Gone); re-listing", { name });
          rv = undefined;
          break;
        case "failed":
          await failed(end.error, end.status);
          break;
        case "ended":
          rv = end.rv;
          // The server's own timeout ends a watch after minutes; one that ends at once with
          // nothing in it is a server turning us away, and waits like a failure.
          if (end.events === 0) await sleep(backoff.next());
          break;
      }
    }
  };

  const probe = async () => {
    const interval = options.probeIntervalMs ?? 10_000;
    if (interval <= 0) return;
    while (!closed) {
      await sleep(interval);
      if (closed) return;
      try {
        await deadline(
          api.get("/api/v1/namespaces?limit=1"),
          Math.min(interval, 5_000),
          () => new Error("no answer"),
        );
        reachability.succeeded("liveness probe");
      } catch (error) {
        if (closed) return;
        if (statusCode(error) !== undefined && statusCode(error)! < 500) {
          reachability.succeeded("liveness probe");
          continue;
        }
        reachability.failed("liveness probe", describe(error));
        // The watches may sit on a dead connection that never errors: start them afresh.
        for (const open of aborts) open.abort();
        aborts.clear();
      }
    }
  };

  const listedAll: Promise<void>[] = [];
  for (const namespace of scopes) {
    for (const resource of ["namespaces", "services", "endpointslices", "pods"] as Resource[]) {
      listedAll.push(new Promise<void>((resolve) => void run(resource, namespace, resolve)));
    }
  }
  const sync: ClusterSync = {
    store,
    synced: deadline(
      Promise.all(listedAll),
      initialListTimeoutMs,
      () =>
        new Error(
          `the API server at ${server} did not finish the initial list of the cluster within ${
            initialListTimeoutMs / 1000
          } s (${reachability.errors().join("; ") || "no answer"})`,
        ),
    ).then(() => {
      reachability.markSynced();
      void probe();
    }, (error) => {
      sync.close();
      throw new ClusterAccessError(
        `${
          describe(error)
        }; check that the server answers (kubectl get namespaces) or raise --sync-timeout`,
      );
    }),
    healthy: () => reachability.state === "synced" && [...watching.values()].every(Boolean),
    state: () => reachability.state,
    errors: () => reachability.errors(),
    onStateChange: (listener) => reachability.onChange(listener),
    close() {
      closed = true;
      for (const a of aborts) a.abort();
    },
  };
  return sync;
}

/** How one watch ended. */
type WatchEnd =
  | { kind: "expired"; rv: string }
  | { kind: "failed"; error: string; status?: number }
  | { kind: "ended"; rv: string; events: number };

/** A whole list: every page's objects (as received: not checked yet) and the snapshot's version. */
interface KubeList {
  items: unknown[];
  resourceVersion?: string;
}

/** The HTTP status of a refused request; undefined for a network failure. */
function statusCode(error: unknown): number | undefined {
  return error instanceof ApiStatusError ? error.status : undefined;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message.split("\n")[0] : String(error);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
