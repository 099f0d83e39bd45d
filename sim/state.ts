/**
 * The simulated API server's storage: Kubernetes objects by kind with etcd-like resource versions,
 * an event history that watches replay from, compaction (a watch from a compacted version gets
 * 410 Gone), address allocation, and EndpointSlices kept in step with Services and Pods (built
 * by objects.ts; only the slices that changed are written, as the controller does).
 */
import type { Fixture, FixturePod, FixtureService } from "./fixture.ts";
import { endpointSlicesOf, namespaceObject, podObject, serviceObject } from "./objects.ts";

/** The kinds the simulator serves. */
export type Kind = "namespaces" | "services" | "pods" | "endpointslices";

/** A stored Kubernetes object (JSON). */
export type KubeObject = {
  kind: string;
  apiVersion: string;
  metadata: {
    name: string;
    namespace?: string;
    uid: string;
    resourceVersion: string;
    labels?: Record<string, string>;
    creationTimestamp: string;
    [key: string]: unknown;
  };
  [key: string]: unknown;
};

/** A change, as a watch sends it. */
export interface WatchEvent {
  rv: number;
  kind: Kind;
  type: "ADDED" | "MODIFIED" | "DELETED";
  object: KubeObject;
}

/** What a pod is made from: a fixture pod, or one a client wrote (its containers kept as sent). */
export interface PodSource extends FixturePod {
  annotations?: Record<string, string>;
  /** `spec.containers` as the client wrote them (fixture pods get one container, `app`). */
  containers?: unknown[];
}

/** What a service is made from: a fixture service, or one a client wrote. */
export interface ServiceSource extends FixtureService {
  /** Default: the current one when replacing, else the next free 10.96.x.y. */
  clusterIP?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

/** A namespace's own metadata. */
export interface NamespaceSource {
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

/** A pod as the simulator keeps it (its source + runtime facts). */
export interface SimPod extends PodSource {
  namespace: string;
  uid: string;
  ip: string;
}

/**
 * Changes kept for watches to resume from; older ones are compacted away (a watch from before
 * them gets 410 Gone, as after etcd's compaction), so a client writing in a loop cannot grow the
 * history without bound.
 */
export const MAX_HISTORY = 10_000;

const API_VERSION: Record<Kind, string> = {
  namespaces: "v1",
  services: "v1",
  pods: "v1",
  endpointslices: "discovery.k8s.io/v1",
};
const KIND_NAME: Record<Kind, string> = {
  namespaces: "Namespace",
  services: "Service",
  pods: "Pod",
  endpointslices: "EndpointSlice",
};

/** Storage and change history. */
export class SimState {
  #rv = 1;
  #compactedThrough = 0;
  readonly #objects: Record<Kind, Map<string, KubeObject>> = {
    namespaces: new Map(),
    services: new Map(),
    pods: new Map(),
    endpointslices: new Map(),
  };
  readonly #history: WatchEvent[] = [];
  readonly #listeners = new Set<(event: WatchEvent) => void>();
  readonly #pods = new Map<string, SimPod>();
  readonly #services = new Map<string, ServiceSource & { namespace: string }>();
  /** `namespace/name` by pod IP and by cluster IP: addresses are unique, and allocation skips them. */
  readonly #podIps = new Map<string, string>();
  readonly #clusterIps = new Map<string, string>();
  #nextPodIp = 10;
  #nextClusterIp = 10;

  /** The current resource version. */
  get resourceVersion(): number {
    return this.#rv;
  }

  /** Versions at or below this were compacted away. */
  get compactedThrough(): number {
    return this.#compactedThrough;
  }

  /** Loads a fixture. */
  load(fixture: Fixture): void {
    for (const ns of fixture.namespaces) {
      this.addNamespace(ns.name);
      for (const pod of ns.pods) this.addPod(ns.name, pod);
      for (const service of ns.services) this.addService(ns.name, service);
    }
  }

  /** Objects of a kind, optionally in one namespace. */
  list(kind: Kind, namespace?: string): KubeObject[] {
    return [...this.#objects[kind].values()].filter((o) =>
      namespace === undefined || o.metadata.namespace === namespace
    );
  }

  /** One object. */
  get(kind: Kind, namespace: string | undefined, name: string): KubeObject | undefined {
    return this.#objects[kind].get(key(namespace, name));
  }

  /** Events after `rv`, or `undefined` when `rv` was compacted (410 Gone). */
  eventsSince(rv: number): WatchEvent[] | undefined {
    if (rv < this.#compactedThrough) return undefined;
    return this.#history.filter((e) => e.rv > rv);
  }

  /** Subscribes to changes. */
  subscribe(listener: (event: WatchEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Forgets history up to now: a watch resuming from an older version gets 410 Gone. */
  compact(): void {
    this.#compactedThrough = this.#rv;
    this.#history.length = 0;
  }

  /** The simulator's view of a pod. */
  pod(namespace: string, name: string): SimPod | undefined {
    return this.#pods.get(key(namespace, name));
  }

  /** Adds a namespace, or with `source` sets its labels and annotations. */
  addNamespace(name: string, source?: NamespaceSource): void {
    if (this.get("namespaces", undefined, name) && !source) return;
    this.#put("namespaces", namespaceObject(name, source));
  }

  /**
   * Removes a namespace with its services and slices (the caller removes its pods first, as the
   * namespace controller does before the namespace goes).
   */
  deleteNamespace(name: string): void {
    for (const service of this.list("services", name)) {
      this.deleteService(name, service.metadata.name);
    }
    for (const slice of this.list("endpointslices", name)) {
      this.#delete("endpointslices", name, slice.metadata.name);
    }
    this.#delete("namespaces", undefined, name);
  }

  /** Adds a pod (its namespace too); a `podIP` another pod has is an error. */
  addPod(namespace: string, pod: PodSource): SimPod {
    if (pod.podIP !== undefined && this.podWithIp(pod.podIP)) {
      throw new Error(`pod IP ${pod.podIP} is already the IP of pod ${this.podWithIp(pod.podIP)}`);
    }
    this.addNamespace(namespace);
    const ip = pod.podIP ?? this.#podIp();
    const sim: SimPod = { ...pod, namespace, uid: crypto.randomUUID(), ip };
    this.#pods.set(key(namespace, pod.name), sim);
    this.#podIps.set(ip, key(namespace, pod.name));
    this.#putPod(sim);
    this.#refreshSlices(namespace);
    return sim;
  }

  /** `namespace/name` of the pod with this IP, if any. */
  podWithIp(ip: string): string | undefined {
    return this.#podIps.get(ip);
  }

  /** `namespace/name` of the service with this cluster IP, if any. */
  serviceWithClusterIp(ip: string): string | undefined {
    return this.#clusterIps.get(ip);
  }

  /** Changes a pod's labels and annotations (services it matches follow). */
  relabelPod(
    namespace: string,
    name: string,
    labels: Record<string, string>,
    annotations: Record<string, string> | undefined,
  ): void {
    const pod = this.#pods.get(key(namespace, name));
    if (!pod) throw new Error(`no pod ${namespace}/${name}`);
    pod.labels = labels;
    pod.annotations = annotations;
    this.#putPod(pod);
    this.#refreshSlices(namespace);
  }

  setPodReady(namespace: string, name: string, ready: boolean): void {
    const pod = this.#pods.get(key(namespace, name));
    if (!pod) throw new Error(`no pod ${namespace}/${name}`);
    pod.ready = ready;
    this.#putPod(pod);
    this.#refreshSlices(namespace);
  }

  deletePod(namespace: string, name: string): void {
    const pod = this.#pods.get(key(namespace, name));
    if (!pod) throw new Error(`no pod ${namespace}/${name}`);
    this.#pods.delete(key(namespace, name));
    this.#podIps.delete(pod.ip);
    this.#delete("pods", namespace, name);
    this.#refreshSlices(namespace);
  }

  /** Adds a service, or replaces one of the same name (keeping its cluster IP unless given). */
  addService(namespace: string, service: ServiceSource): void {
    this.addNamespace(namespace);
    this.#services.set(key(namespace, service.name), { ...service, namespace });
    const current = (this.get("services", namespace, service.name)?.spec as {
      clusterIP?: string;
    } | undefined)?.clusterIP;
    const clusterIP = service.externalName
      ? undefined
      : service.headless
      ? "None"
      : service.clusterIP ?? (current && current !== "None" ? current : this.#clusterIp());
    if (current) this.#clusterIps.delete(current);
    if (clusterIP && clusterIP !== "None") {
      this.#clusterIps.set(clusterIP, key(namespace, service.name));
    }
    this.#put("services", serviceObject(namespace, service, clusterIP));
    this.#refreshSlices(namespace);
  }

  deleteService(namespace: string, name: string): void {
    const clusterIP = (this.get("services", namespace, name)?.spec as { clusterIP?: string })
      ?.clusterIP;
    if (clusterIP) this.#clusterIps.delete(clusterIP);
    this.#services.delete(key(namespace, name));
    this.#delete("services", namespace, name);
    this.#refreshSlices(namespace);
  }

  #putPod(pod: SimPod): void {
    const existing = this.get("pods", pod.namespace, pod.name);
    this.#put("pods", podObject(pod, existing?.metadata.creationTimestamp));
  }

  /** Recomputes every slice of a namespace, writing only the ones that changed. */
  #refreshSlices(namespace: string): void {
    const services = [...this.#services.values()].filter((s) => s.namespace === namespace);
    const pods = [...this.#pods.values()].filter((p) => p.namespace === namespace);
    const wanted = endpointSlicesOf(
      namespace,
      services,
      pods,
      (name) => this.get("services", namespace, name)!.metadata.uid,
    );
    for (const existing of this.list("endpointslices", namespace)) {
      if (!wanted.has(existing.metadata.name)) {
        this.#delete("endpointslices", namespace, existing.metadata.name);
      }
    }
    for (const [name, slice] of wanted) {
      const existing = this.get("endpointslices", namespace, name);
      const same = existing &&
        JSON.stringify([existing.endpoints, existing.ports]) ===
          JSON.stringify([slice.endpoints, slice.ports]);
      if (same) continue;
      const object = slice;
      if (existing) {
        object.metadata.uid = existing.metadata.uid;
        object.metadata.creationTimestamp = existing.metadata.creationTimestamp;
      }
      this.#put("endpointslices", object);
    }
  }

  #put(kind: Kind, object: KubeObject): void {
    const k = key(object.metadata.namespace, object.metadata.name);
    const existing = this.#objects[kind].get(k);
    object.metadata.resourceVersion = String(++this.#rv);
    if (existing) {
      object.metadata.uid = existing.metadata.uid;
      object.metadata.creationTimestamp = existing.metadata.creationTimestamp;
    }
    this.#objects[kind].set(k, object);
    this.#record({ rv: this.#rv, kind, type: existing ? "MODIFIED" : "ADDED", object });
  }

  #delete(kind: Kind, namespace: string | undefined, name: string): void {
    const k = key(namespace, name);
    const existing = this.#objects[kind].get(k);
    if (!existing) return;
    this.#objects[kind].delete(k);
    const object = structuredClone(existing);
    object.metadata.resourceVersion = String(++this.#rv);
    this.#record({ rv: this.#rv, kind, type: "DELETED", object });
  }

  #record(event: WatchEvent): void {
    this.#history.push(event);
    if (this.#history.length > MAX_HISTORY) {
      // Resuming from the dropped event's version would miss it: that and older get 410.
      this.#compactedThrough = this.#history.shift()!.rv;
    }
    for (const listener of this.#listeners) listener(event);
  }

  /** The next 10.244.x.y no pod has (fixtures may have taken some with `podIP`). */
  #podIp(): string {
    while (true) {
      const n = this.#nextPodIp++;
      const ip = `10.244.${Math.floor(n / 250)}.${n % 250}`;
      if (!this.podWithIp(ip)) return ip;
    }
  }

  #clusterIp(): string {
    while (true) {
      const n = this.#nextClusterIp++;
      const ip = `10.96.${Math.floor(n / 250)}.${n % 250}`;
      if (!this.serviceWithClusterIp(ip)) return ip;
    }
  }
}

/** `kind` and `apiVersion` of a collection, for lists and bookmarks. */
export function kindInfo(kind: Kind): { kind: string; apiVersion: string } {
  return { kind: KIND_NAME[kind], apiVersion: API_VERSION[kind] };
}

function key(namespace: string | undefined, name: string): string {
  return `${namespace ?? ""}/${name}`;
}
