/**
 * Keeps a {@link ClusterStore} current from the Kubernetes API: for each resource a list, then a
 * watch from the list's resource version with bookmarks; a 410 Gone (or ERROR event) re-lists
 * that resource only; other failures back off exponentially with jitter and resume from the last
 * version seen (kubernetes.md §6.4). Scoped to all namespaces, or to the given ones when listing
 * all is forbidden.
 */
import { CoreV1Api, DiscoveryV1Api, type KubeConfig, Watch } from "@kubernetes/client-node";
import { logger } from "../log.ts";
import { NoTelemetry, type TelemetrySink } from "../telemetry.ts";
import { ClusterStore, type KubeObject } from "./store.ts";

type Resource = "namespaces" | "services" | "pods" | "endpointslices";

const log = logger("cluster");

/** A running cluster view. */
export interface KubeClusterView {
  store: ClusterStore;
  /** Resolves once every resource has been listed once. */
  synced: Promise<void>;
  /** Whether every resource is currently being watched. */
  healthy(): boolean;
  close(): void;
}

/** Options for {@link startClusterView}. */
export interface ClusterViewOptions {
  kubeConfig: KubeConfig;
  /** Namespaces to fall back to when listing all is forbidden. */
  namespaces: string[];
  telemetry?: TelemetrySink;
}

/** Error from the API that a user must fix (credentials, RBAC). */
export class ClusterAccessError extends Error {}

/** Starts listing and watching. */
export async function startClusterView(options: ClusterViewOptions): Promise<KubeClusterView> {
  const store = new ClusterStore();
  const core = options.kubeConfig.makeApiClient(CoreV1Api);
  const discovery = options.kubeConfig.makeApiClient(DiscoveryV1Api);
  const watch = new Watch(options.kubeConfig);
  const telemetry = options.telemetry ?? NoTelemetry;
  const aborts = new Set<AbortController>();
  let closed = false;
  const watching = new Map<string, boolean>();

  // One probe decides the scope: all namespaces, or only the configured ones.
  let scopes: (string | undefined)[] = [undefined];
  try {
    await core.listNamespace({ limit: 1 });
  } catch (error) {
    const code = statusCode(error);
    if (code === 401) {
      throw new ClusterAccessError(
        `the API server at ${options.kubeConfig.getCurrentCluster()?.server} rejected the credentials of context "${options.kubeConfig.getCurrentContext()}" (401 Unauthorized)`,
      );
    }
    if (code !== 403) {
      throw new ClusterAccessError(
        `cannot reach the API server at ${options.kubeConfig.getCurrentCluster()?.server}: ${
          describe(error)
        }`,
      );
    }
    scopes = options.namespaces;
    log.warn("listing all namespaces is forbidden; watching only {namespaces}", {
      namespaces: options.namespaces.join(", "),
    });
  }

  const list = async (resource: Resource, namespace: string | undefined) => {
    switch (resource) {
      case "namespaces":
        return namespace
          ? {
            items: [await core.readNamespace({ name: namespace })],
            metadata: { resourceVersion: undefined },
          }
          : await core.listNamespace();
      case "services":
        return namespace
          ? await core.listNamespacedService({ namespace })
          : await core.listServiceForAllNamespaces();
      case "pods":
        return namespace
          ? await core.listNamespacedPod({ namespace })
          : await core.listPodForAllNamespaces();
      case "endpointslices":
        return namespace
          ? await discovery.listNamespacedEndpointSlice({ namespace })
          : await discovery.listEndpointSliceForAllNamespaces();
    }
  };
  const path = (resource: Resource, namespace: string | undefined) => {
    const base = resource === "endpointslices" ? "/apis/discovery.k8s.io/v1" : "/api/v1";
    if (resource === "namespaces") return namespace ? undefined : "/api/v1/namespaces";
    return namespace ? `${base}/namespaces/${namespace}/${resource}` : `${base}/${resource}`;
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

  const run = async (resource: Resource, namespace: string | undefined, listed: () => void) => {
    const name = `${resource}${namespace ? `/${namespace}` : ""}`;
    let rv: string | undefined;
    let backoff = 250;
    let first = true;
    while (!closed) {
      try {
        if (rv === undefined) {
          const result = await list(resource, namespace);
          store.replace(resource, result.items, namespace);
          rv = result.metadata?.resourceVersion;
          if (first) {
            first = false;
            listed();
          }
        }
        const watchPath = path(resource, namespace);
        if (!watchPath) {
          await sleep(30_000);
          rv = undefined;
          continue;
        }
        const gone = await new Promise<boolean>((resolve) => {
          let expired = false;
          watch.watch(watchPath, {
            resourceVersion: rv,
            allowWatchBookmarks: true,
            timeoutSeconds: 300,
          }, (type, object) => {
            if (type === "BOOKMARK") {
              rv = object?.metadata?.resourceVersion ?? rv;
              return;
            }
            if (type === "ERROR") {
              if (object?.code === 410) expired = true;
              return;
            }
            rv = object?.metadata?.resourceVersion ?? rv;
            apply(resource, type, object);
          }, (error) => {
            watching.set(name, false);
            if (error && statusCode(error) === 410) expired = true;
            else if (error && !closed) {
              log.debug("watch of {name} ended: {error}", { name, error: describe(error) });
            }
            resolve(expired);
          }).then((controller) => {
            watching.set(name, true);
            backoff = 250;
            aborts.add(controller);
          }, (error) => {
            watching.set(name, false);
            if (statusCode(error) === 410) expired = true;
            log.debug("watch of {name} failed: {error}", { name, error: describe(error) });
            resolve(expired);
          });
        });
        if (closed) return;
        telemetry.emit({ type: "watch_restart", resource });
        if (gone) {
          log.info("watch of {name} expired (410 Gone); re-listing", { name });
          rv = undefined;
        } else {
          await sleep(jitter(100));
        }
      } catch (error) {
        if (closed) return;
        watching.set(name, false);
        if (statusCode(error) === 410) rv = undefined;
        log.warn("listing {name} failed, retrying in {ms} ms: {error}", {
          name,
          ms: backoff,
          error: describe(error),
        });
        await sleep(jitter(backoff));
        backoff = Math.min(backoff * 2, 30_000);
      }
    }
  };

  const listedAll: Promise<void>[] = [];
  for (const namespace of scopes) {
    for (const resource of ["namespaces", "services", "endpointslices", "pods"] as Resource[]) {
      listedAll.push(new Promise<void>((resolve) => void run(resource, namespace, resolve)));
    }
  }
  return {
    store,
    synced: Promise.all(listedAll).then(() => {}),
    healthy: () => [...watching.values()].every(Boolean),
    close() {
      closed = true;
      for (const a of aborts) a.abort();
    },
  };
}

function statusCode(error: unknown): number | undefined {
  const e = error as { code?: number; statusCode?: number; response?: { statusCode?: number } };
  return e?.code ?? e?.statusCode ?? e?.response?.statusCode;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message.split("\n")[0] : String(error);
}

function jitter(ms: number): number {
  return ms / 2 + Math.random() * ms / 2;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
