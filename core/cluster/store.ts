/**
 * The cluster as k8stun keeps it in memory: Services, EndpointSlices, Pods and Namespaces as
 * plain records, indexed for the questions the router, DNS and proxy ask. Fed with Kubernetes
 * objects by the watcher (or directly by tests); every change is announced to listeners, and
 * readiness is read from EndpointSlice conditions (docs/portforward.md §11: `ready` absent = ready).
 */
import type {
  ClusterChange,
  ClusterView,
  Endpoint,
  PodInfo,
  ServiceInfo,
  ServicePort,
} from "./types.ts";

/**
 * The fields of a Namespace, Service, Pod or EndpointSlice the store reads, as the API serves them
 * in lists and watch events (plain JSON); everything else is ignored.
 */
export interface KubeObject {
  metadata?: {
    name?: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    labels?: Record<string, string>;
  };
  spec?: {
    type?: string;
    clusterIP?: string;
    externalName?: string;
    ports?: { name?: string; port: number; protocol?: string; targetPort?: number | string }[];
    hostname?: string;
    subdomain?: string;
    containers?: { ports?: { name?: string; containerPort: number; protocol?: string }[] }[];
  };
  status?: { podIP?: string; phase?: string; conditions?: { type: string; status: string }[] };
  addressType?: string;
  ports?: { name?: string; port?: number; protocol?: string }[] | null;
  endpoints?: {
    addresses?: string[];
    conditions?: { ready?: boolean; terminating?: boolean };
    hostname?: string;
    targetRef?: { kind?: string; namespace?: string; name?: string };
  }[];
}

interface SliceRecord {
  namespace: string;
  name: string;
  service: string;
  ports: { name?: string; port: number }[] | null;
  endpoints: {
    addresses: string[];
    ready: boolean;
    hostname?: string;
    pod?: { namespace: string; name: string };
  }[];
}

const key = (namespace: string, name: string) => `${namespace}/${name}`;

/** In-memory cluster view. */
export class ClusterStore implements ClusterView {
  readonly #namespaces = new Set<string>();
  readonly #services = new Map<string, ServiceInfo>();
  readonly #servicesByIp = new Map<string, ServiceInfo>();
  readonly #pods = new Map<string, PodInfo>();
  readonly #podsByIp = new Map<string, PodInfo>();
  readonly #slices = new Map<string, SliceRecord>();
  readonly #listeners = new Set<(change: ClusterChange) => void>();

  namespaces(): string[] {
    return [...this.#namespaces].sort();
  }

  hasService(namespace: string, name: string): boolean {
    return this.#services.has(key(namespace, name));
  }

  hasPod(namespace: string, name: string): boolean {
    return this.#pods.has(key(namespace, name));
  }

  services(): ServiceInfo[] {
    return [...this.#services.values()];
  }

  service(namespace: string, name: string): ServiceInfo | undefined {
    return this.#services.get(key(namespace, name));
  }

  serviceByClusterIp(ip: string): ServiceInfo | undefined {
    return this.#servicesByIp.get(ip);
  }

  pod(namespace: string, name: string): PodInfo | undefined {
    return this.#pods.get(key(namespace, name));
  }

  podByIp(ip: string): PodInfo | undefined {
    return this.#podsByIp.get(ip);
  }

  podByHostname(namespace: string, subdomain: string, hostname: string): PodInfo | undefined {
    for (const pod of this.#pods.values()) {
      if (pod.namespace === namespace && pod.subdomain === subdomain && pod.hostname === hostname) {
        return pod;
      }
    }
    // Endpoints carry the hostname too (the pod may live in a namespace we do not watch pods of).
    for (const slice of this.#slices.values()) {
      if (slice.namespace !== namespace || slice.service !== subdomain) continue;
      const endpoint = slice.endpoints.find((e) => e.hostname === hostname && e.pod);
      if (endpoint?.pod) return this.pod(endpoint.pod.namespace, endpoint.pod.name);
    }
    return undefined;
  }

  readyEndpoints(namespace: string, service: string, servicePort: number): Endpoint[] {
    const svc = this.service(namespace, service);
    const port = svc?.ports.find((p) => p.port === servicePort);
    if (!svc || !port) return [];
    const out: Endpoint[] = [];
    for (const slice of this.#slicesOf(namespace, service)) {
      // A slice's port matches the service port by name (unnamed: the only port). `null` ports
      // mean unresolved endpoints (docs/portforward.md §11), which cannot be dialed.
      const slicePort = slice.ports?.find((p) => (p.name ?? "") === (port.name ?? ""));
      if (!slicePort) continue;
      for (const e of slice.endpoints) {
        if (!e.ready || e.addresses.length === 0) continue;
        out.push({ pod: e.pod, ip: e.addresses[0], port: slicePort.port, hostname: e.hostname });
      }
    }
    return out;
  }

  readyAddresses(namespace: string, service: string): Endpoint[] {
    const out: Endpoint[] = [];
    const seen = new Set<string>();
    for (const slice of this.#slicesOf(namespace, service)) {
      for (const e of slice.endpoints) {
        if (!e.ready || e.addresses.length === 0 || seen.has(e.addresses[0])) continue;
        seen.add(e.addresses[0]);
        out.push({
          pod: e.pod,
          ip: e.addresses[0],
          port: slice.ports?.[0]?.port ?? 0,
          hostname: e.hostname,
        });
      }
    }
    return out;
  }

  /** How many objects of each kind the store holds (start-up figures, diagnostics). */
  counts(): { namespaces: number; services: number; endpointSlices: number; pods: number } {
    return {
      namespaces: this.#namespaces.size,
      services: this.#services.size,
      endpointSlices: this.#slices.size,
      pods: this.#pods.size,
    };
  }

  onChange(listener: (change: ClusterChange) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  // --- feeding the store ---------------------------------------------------------------------

  applyNamespace(object: KubeObject): void {
    const name = meta(object).name as string;
    if (this.#namespaces.has(name)) return;
    this.#namespaces.add(name);
    this.#emit({ kind: "namespace", type: "added", name });
  }

  deleteNamespace(object: KubeObject): void {
    const name = meta(object).name as string;
    if (this.#namespaces.delete(name)) this.#emit({ kind: "namespace", type: "deleted", name });
  }

  applyService(object: KubeObject): void {
    const service = serviceInfo(object);
    const k = key(service.namespace, service.name);
    const existing = this.#services.get(k);
    if (existing?.clusterIP) this.#servicesByIp.delete(existing.clusterIP);
    this.#services.set(k, service);
    if (service.clusterIP) this.#servicesByIp.set(service.clusterIP, service);
    this.#namespaces.add(service.namespace);
    this.#emit({ kind: "service", type: existing ? "modified" : "added", service });
  }

  deleteService(object: KubeObject): void {
    const k = key(meta(object).namespace, meta(object).name);
    const existing = this.#services.get(k);
    if (!existing) return;
    this.#services.delete(k);
    if (existing.clusterIP) this.#servicesByIp.delete(existing.clusterIP);
    this.#emit({ kind: "service", type: "deleted", service: existing });
  }

  applyPod(object: KubeObject): void {
    const pod = podInfo(object);
    const k = key(pod.namespace, pod.name);
    const existing = this.#pods.get(k);
    if (existing?.ip && this.#podsByIp.get(existing.ip) === existing) {
      this.#podsByIp.delete(existing.ip);
    }
    this.#pods.set(k, pod);
    if (pod.ip) this.#podsByIp.set(pod.ip, pod);
    this.#emit({ kind: "pod", type: existing ? "modified" : "added", pod });
  }

  deletePod(object: KubeObject): void {
    const k = key(meta(object).namespace, meta(object).name);
    const existing = this.#pods.get(k);
    if (!existing) return;
    this.#pods.delete(k);
    if (existing.ip && this.#podsByIp.get(existing.ip) === existing) {
      this.#podsByIp.delete(existing.ip);
    }
    this.#emit({ kind: "pod", type: "deleted", pod: existing });
  }

  applyEndpointSlice(object: KubeObject): void {
    const slice = sliceRecord(object);
    if (!slice) return;
    this.#slices.set(key(slice.namespace, slice.name), slice);
    this.#emit({ kind: "endpoints", namespace: slice.namespace, service: slice.service });
  }

  deleteEndpointSlice(object: KubeObject): void {
    const k = key(meta(object).namespace, meta(object).name);
    const existing = this.#slices.get(k);
    if (!existing) return;
    this.#slices.delete(k);
    this.#emit({ kind: "endpoints", namespace: existing.namespace, service: existing.service });
  }

  /**
   * Replaces every object of a kind (after a re-list), announcing only real differences, so a
   * re-list after 410 Gone changes nothing that did not change in the cluster.
   */
  replace(
    kind: "namespaces" | "services" | "pods" | "endpointslices",
    objects: KubeObject[],
    namespace?: string,
  ): void {
    const names = new Set(objects.map((o) => key(meta(o).namespace ?? "", meta(o).name)));
    const inScope = (ns: string) => namespace === undefined || ns === namespace;
    switch (kind) {
      case "namespaces":
        for (const ns of [...this.#namespaces]) {
          if (!names.has(key("", ns))) this.deleteNamespace({ metadata: { name: ns } });
        }
        for (const o of objects) this.applyNamespace(o);
        return;
      case "services":
        for (const s of [...this.#services.values()]) {
          if (inScope(s.namespace) && !names.has(key(s.namespace, s.name))) {
            this.deleteService({ metadata: { namespace: s.namespace, name: s.name } });
          }
        }
        for (const o of objects) {
          const current = this.#services.get(key(meta(o).namespace, meta(o).name));
          if (!current || JSON.stringify(current) !== JSON.stringify(serviceInfo(o))) {
            this.applyService(o);
          }
        }
        return;
      case "pods":
        for (const p of [...this.#pods.values()]) {
          if (inScope(p.namespace) && !names.has(key(p.namespace, p.name))) {
            this.deletePod({ metadata: { namespace: p.namespace, name: p.name } });
          }
        }
        for (const o of objects) {
          const current = this.#pods.get(key(meta(o).namespace, meta(o).name));
          if (!current || JSON.stringify(current) !== JSON.stringify(podInfo(o))) this.applyPod(o);
        }
        return;
      case "endpointslices":
        for (const s of [...this.#slices.values()]) {
          if (inScope(s.namespace) && !names.has(key(s.namespace, s.name))) {
            this.deleteEndpointSlice({ metadata: { namespace: s.namespace, name: s.name } });
          }
        }
        for (const o of objects) {
          const current = this.#slices.get(key(meta(o).namespace, meta(o).name));
          const next = sliceRecord(o);
          if (next && JSON.stringify(current) !== JSON.stringify(next)) this.applyEndpointSlice(o);
        }
        return;
    }
  }

  #slicesOf(namespace: string, service: string): SliceRecord[] {
    return [...this.#slices.values()]
      .filter((s) => s.namespace === namespace && s.service === service)
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  #emit(change: ClusterChange): void {
    for (const listener of this.#listeners) {
      try {
        listener(change);
      } catch {
        // a listener's failure is its own
      }
    }
  }
}

/** A Service object as a {@link ServiceInfo}. */
export function serviceInfo(object: KubeObject): ServiceInfo {
  const spec = object.spec ?? {};
  const type = (spec.type ?? "ClusterIP") as ServiceInfo["type"];
  const clusterIP = spec.clusterIP as string | undefined;
  const headless = clusterIP === "None";
  return {
    namespace: meta(object).namespace,
    name: meta(object).name,
    type,
    clusterIP: headless || !clusterIP ? undefined : clusterIP,
    headless,
    externalName: type === "ExternalName" ? spec.externalName : undefined,
    ports: (spec.ports ?? []).map((p): ServicePort => ({
      ...(p.name ? { name: p.name } : {}),
      port: p.port,
      protocol: (p.protocol ?? "TCP") as ServicePort["protocol"],
      targetPort: p.targetPort ?? p.port,
    })),
  };
}

/** A Pod object as a {@link PodInfo}. */
export function podInfo(object: KubeObject): PodInfo {
  const status = object.status ?? {};
  const conditions = (status.conditions ?? []) as { type: string; status: string }[];
  return {
    namespace: meta(object).namespace,
    name: meta(object).name,
    uid: meta(object).uid,
    ip: status.podIP,
    hostname: object.spec?.hostname,
    subdomain: object.spec?.subdomain,
    ready: conditions.some((c) => c.type === "Ready" && c.status === "True"),
    running: status.phase === "Running",
    ports: (object.spec?.containers ?? []).flatMap((c) =>
      (c.ports ?? []).map((p) => ({
        ...(p.name ? { name: p.name } : {}),
        containerPort: p.containerPort,
        protocol: p.protocol ?? "TCP",
      }))
    ),
  };
}

function sliceRecord(object: KubeObject): SliceRecord | undefined {
  const service = object.metadata?.labels?.["kubernetes.io/service-name"];
  if (!service || (object.addressType && object.addressType !== "IPv4")) return undefined;
  return {
    namespace: meta(object).namespace,
    name: meta(object).name,
    service,
    ports: object.ports === null || object.ports === undefined
      ? null
      // A port without a number is not resolved yet: nothing can be dialed through it.
      : object.ports.flatMap((p) =>
        p.port === undefined ? [] : [{ ...(p.name ? { name: p.name } : {}), port: p.port }]
      ),
    endpoints: (object.endpoints ?? []).map((e) => ({
      addresses: e.addresses ?? [],
      // docs/portforward.md §11: ready nil means unknown, treated as ready; terminating endpoints are not ready.
      ready: e.conditions?.ready !== false && e.conditions?.terminating !== true,
      ...(e.hostname ? { hostname: e.hostname } : {}),
      ...(e.targetRef?.kind === "Pod" && e.targetRef.name
        ? {
          pod: {
            namespace: e.targetRef.namespace ?? meta(object).namespace,
            name: e.targetRef.name,
          },
        }
        : {}),
    })),
  };
}

/** An object's name and namespace ("" where absent: a namespace has none). */
function meta(object: KubeObject): { name: string; namespace: string; uid?: string } {
  return {
    name: object.metadata?.name ?? "",
    namespace: object.metadata?.namespace ?? "",
    uid: object.metadata?.uid,
  };
}
