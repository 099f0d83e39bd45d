/**
 * The cluster as k8stun sees it: plain records distilled from Services, EndpointSlices and Pods.
 * Everything above the Kubernetes client (router, DNS, proxy, API) reads the cluster through
 * {@link ClusterView}, so tests substitute an in-memory view.
 */
import type { ClusterReader } from "../../mod.ts";

/** A service port as the Service declares it. */
export interface ServicePort {
  name?: string;
  port: number;
  protocol: "TCP" | "UDP" | "SCTP";
  /** Numeric target port, or the name of a container port. */
  targetPort: number | string;
}

/** A Service, reduced to what k8stun needs. */
export interface ServiceInfo {
  namespace: string;
  name: string;
  type: "ClusterIP" | "NodePort" | "LoadBalancer" | "ExternalName";
  /** `undefined` for ExternalName; `"None"` is reported as `headless: true` and no clusterIP. */
  clusterIP?: string;
  headless: boolean;
  externalName?: string;
  ports: ServicePort[];
}

/** A Pod, reduced to what k8stun needs. */
export interface PodInfo {
  namespace: string;
  name: string;
  uid?: string;
  ip?: string;
  hostname?: string;
  subdomain?: string;
  ready: boolean;
  running: boolean;
  ports: { name?: string; containerPort: number; protocol: string }[];
}

/** One ready endpoint of a service port, with the target port already resolved. */
export interface Endpoint {
  /** The pod behind the endpoint; endpoints without a targetRef (manual slices) have none. */
  pod?: { namespace: string; name: string };
  ip: string;
  /** Resolved target port (EndpointSlice ports carry numbers, named ports included). */
  port: number;
  hostname?: string;
}

/** What changed in the view, for listeners (VIP pre-allocation, DNS caches, the API). */
export type ClusterChange =
  | { kind: "service"; type: "added" | "modified" | "deleted"; service: ServiceInfo }
  | { kind: "pod"; type: "added" | "modified" | "deleted"; pod: PodInfo }
  | { kind: "endpoints"; namespace: string; service: string }
  | { kind: "namespace"; type: "added" | "deleted"; name: string };

/** Read access to the cluster. Implementations keep it current from watches. */
export interface ClusterView extends ClusterReader {
  services(): ServiceInfo[];
  service(namespace: string, name: string): ServiceInfo | undefined;
  serviceByClusterIp(ip: string): ServiceInfo | undefined;
  pod(namespace: string, name: string): PodInfo | undefined;
  podByIp(ip: string): PodInfo | undefined;
  /** StatefulSet-style pod addressed as `hostname.subdomain.namespace`. */
  podByHostname(namespace: string, subdomain: string, hostname: string): PodInfo | undefined;
  /** Ready endpoints of a service port (the service's `port`, not its targetPort), in slice order. */
  readyEndpoints(namespace: string, service: string, servicePort: number): Endpoint[];
  /** Ready endpoints of a service, any port (headless DNS answers). */
  readyAddresses(namespace: string, service: string): Endpoint[];
  /** Subscribes to changes; returns an unsubscribe function. */
  onChange(listener: (change: ClusterChange) => void): () => void;
}
