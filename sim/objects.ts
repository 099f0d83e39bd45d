/**
 * The objects the simulated API server returns, built from what it keeps: Namespaces, Services
 * and Pods as a real API server fills them in (defaults, status, conditions), and the
 * EndpointSlices the EndpointSlice controller would derive from Services and Pods (ready
 * condition, named target ports resolved per pod, hostname for pods of the service's subdomain).
 * Pure functions: state.ts stores the results and numbers them.
 */
import type { KubeObject, NamespaceSource, ServiceSource, SimPod } from "./state.ts";

/** A Namespace, labelled with its name as the API server does. */
export function namespaceObject(name: string, source?: NamespaceSource): KubeObject {
  return {
    kind: "Namespace",
    apiVersion: "v1",
    metadata: {
      ...meta(undefined, name, { ...source?.labels, "kubernetes.io/metadata.name": name }),
      ...annotationsOf(source?.annotations),
    },
    spec: { finalizers: ["kubernetes"] },
    status: { phase: "Active" },
  };
}

/** A Service; `clusterIP` is "None" for a headless one and absent for ExternalName. */
export function serviceObject(
  namespace: string,
  service: ServiceSource,
  clusterIP: string | undefined,
): KubeObject {
  const ports = service.ports.map((p) => ({
    ...(p.name ? { name: p.name } : {}),
    protocol: p.protocol,
    port: p.port,
    targetPort: p.targetPort,
  }));
  return {
    kind: "Service",
    apiVersion: "v1",
    metadata: {
      ...meta(namespace, service.name, service.labels),
      ...annotationsOf(service.annotations),
    },
    spec: service.externalName
      ? { type: "ExternalName", externalName: service.externalName, sessionAffinity: "None" }
      : {
        type: "ClusterIP",
        clusterIP,
        clusterIPs: [clusterIP],
        ipFamilies: ["IPv4"],
        ipFamilyPolicy: "SingleStack",
        selector: service.selector,
        ports,
        sessionAffinity: "None",
        internalTrafficPolicy: "Cluster",
      },
    status: { loadBalancer: {} },
  };
}

/** A running Pod; `created` keeps the creation time of the object it replaces. */
export function podObject(pod: SimPod, created?: string): KubeObject {
  const now = timestamp();
  return {
    kind: "Pod",
    apiVersion: "v1",
    metadata: {
      ...meta(pod.namespace, pod.name, pod.labels),
      ...annotationsOf(pod.annotations),
      uid: pod.uid,
      creationTimestamp: created ?? now,
    },
    spec: {
      ...(pod.hostname ? { hostname: pod.hostname } : {}),
      ...(pod.subdomain ? { subdomain: pod.subdomain } : {}),
      containers: pod.containers ?? [{
        name: "app",
        image: "k8stun.sim/app",
        ports: pod.ports.map((p) => ({
          ...(p.name ? { name: p.name } : {}),
          containerPort: p.containerPort,
          protocol: "TCP",
        })),
      }],
      nodeName: "sim-node-0",
    },
    status: {
      phase: "Running",
      podIP: pod.ip,
      podIPs: [{ ip: pod.ip }],
      hostIP: "127.0.0.1",
      conditions: [
        { type: "Initialized", status: "True", lastTransitionTime: now },
        { type: "Ready", status: pod.ready ? "True" : "False", lastTransitionTime: now },
        { type: "ContainersReady", status: pod.ready ? "True" : "False", lastTransitionTime: now },
      ],
      containerStatuses: [{ name: "app", ready: pod.ready, restartCount: 0 }],
    },
  };
}

/**
 * The EndpointSlices of one namespace by name: for each Service with a selector, one slice per
 * distinct resolution of its target ports over the pods it selects (a named targetPort may
 * resolve to different numbers on different pods), as the controller writes them.
 */
export function endpointSlicesOf(
  namespace: string,
  services: ServiceSource[],
  pods: SimPod[],
  serviceUid: (name: string) => string | undefined,
): Map<string, KubeObject> {
  const slices = new Map<string, KubeObject>();
  for (const service of services) {
    if (!service.selector || service.externalName) continue;
    const selected = pods.filter((p) =>
      Object.entries(service.selector!).every(([k, v]) => p.labels[k] === v)
    );
    const groups = new Map<string, { ports: unknown[]; pods: SimPod[] }>();
    for (const pod of selected) {
      const ports = service.ports.map((sp) => {
        const target = typeof sp.targetPort === "number"
          ? sp.targetPort
          : pod.ports.find((cp) => cp.name === sp.targetPort)?.containerPort;
        return target === undefined
          ? undefined
          : { ...(sp.name ? { name: sp.name } : {}), protocol: sp.protocol, port: target };
      }).filter((p) => p !== undefined);
      const groupKey = JSON.stringify(ports);
      const group = groups.get(groupKey) ?? { ports, pods: [] };
      group.pods.push(pod);
      groups.set(groupKey, group);
    }
    let index = 0;
    for (const group of groups.values()) {
      const name = `${service.name}-${sliceSuffix(service.name, index++)}`;
      slices.set(name, {
        kind: "EndpointSlice",
        apiVersion: "discovery.k8s.io/v1",
        metadata: {
          ...meta(namespace, name, {
            "kubernetes.io/service-name": service.name,
            "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
          }),
          ownerReferences: [{
            apiVersion: "v1",
            kind: "Service",
            name: service.name,
            uid: serviceUid(service.name),
            controller: true,
            blockOwnerDeletion: true,
          }],
        },
        addressType: "IPv4",
        endpoints: group.pods.map((pod) => ({
          addresses: [pod.ip],
          conditions: { ready: pod.ready, serving: pod.ready, terminating: false },
          ...(pod.hostname && pod.subdomain === service.name ? { hostname: pod.hostname } : {}),
          targetRef: { kind: "Pod", namespace, name: pod.name, uid: pod.uid },
          nodeName: "sim-node-0",
        })),
        ports: group.ports,
      });
    }
  }
  return slices;
}

/** RFC 3339 to the second, as the API server writes times. */
function timestamp(): string {
  return new Date().toISOString().replace(/\.\d+Z$/, "Z");
}

function meta(
  namespace: string | undefined,
  name: string,
  labels?: Record<string, string>,
): KubeObject["metadata"] {
  return {
    name,
    ...(namespace ? { namespace } : {}),
    uid: crypto.randomUUID(),
    resourceVersion: "0",
    creationTimestamp: timestamp(),
    ...(labels && Object.keys(labels).length > 0 ? { labels } : {}),
  };
}

function annotationsOf(
  annotations?: Record<string, string>,
): { annotations?: Record<string, string> } {
  return annotations && Object.keys(annotations).length > 0 ? { annotations } : {};
}

/** A stable 5-character suffix, like the controller's generated names. */
function sliceSuffix(service: string, index: number): string {
  let h = 2166136261;
  for (const c of `${service}/${index}`) h = Math.imul(h ^ c.charCodeAt(0), 16777619);
  return (h >>> 0).toString(36).padStart(5, "0").slice(-5);
}
