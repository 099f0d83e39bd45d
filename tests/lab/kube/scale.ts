/**
 * A cluster of a given size for start-up measurements, as a simulator fixture and applied to the
 * real control plane alike: `services` Services spread over `namespaces` namespaces, each
 * selecting all of its namespace's `podsPerNamespace` ready pods (port 80 → named target port
 * `http`, 8080), so every Service has one EndpointSlice with endpoints.
 */
import type { Fixture } from "../../../sim/fixture.ts";
import { type ControlPlane, json } from "./control_plane.ts";
import { createReadyPod, must } from "./fixtures.ts";

/** The size of a generated cluster. */
export interface ScaleShape {
  namespaces: number;
  services: number;
  podsPerNamespace: number;
}

/** What the start-up target is stated for: 1,000 Services in 50 namespaces, and some pods. */
export const STARTUP_SCALE: ScaleShape = { namespaces: 50, services: 1000, podsPerNamespace: 2 };

/** The namespaces of a shape: `scale-00` … */
export function scaleNamespaces(shape: ScaleShape): string[] {
  const width = String(shape.namespaces - 1).length;
  return Array.from({ length: shape.namespaces }, (_, i) => `scale-${pad(i, width)}`);
}

/** Every Service of a shape, round-robin over its namespaces: `svc-000` in `scale-00` … */
export function scaleServices(shape: ScaleShape): { namespace: string; name: string }[] {
  const namespaces = scaleNamespaces(shape);
  const width = String(shape.services - 1).length;
  return Array.from({ length: shape.services }, (_, i) => ({
    namespace: namespaces[i % namespaces.length],
    name: `svc-${pad(i, width)}`,
  }));
}

/** How many objects k8stun lists for a shape (namespaces, Services, EndpointSlices, pods). */
export function scaleObjectCount(shape: ScaleShape): number {
  return shape.namespaces + 2 * shape.services + shape.namespaces * shape.podsPerNamespace;
}

const LABELS = { tier: "scale" };
const PORT = { name: "http", containerPort: 8080 };

/** The shape as a simulator fixture (pods serve HTTP naming themselves). */
export function scaleSimFixture(shape: ScaleShape): Fixture {
  const services = scaleServices(shape);
  return {
    namespaces: scaleNamespaces(shape).map((namespace) => ({
      name: namespace,
      services: services.filter((s) => s.namespace === namespace).map((s) => ({
        name: s.name,
        selector: LABELS,
        headless: false,
        ports: [{ name: "http", port: 80, targetPort: "http", protocol: "TCP" as const }],
      })),
      pods: podNames(shape).map((name) => ({
        name,
        labels: LABELS,
        ready: true,
        ports: [{ ...PORT, serve: "http" as const }],
      })),
    })),
  };
}

/**
 * Creates the shape in the real API server (`inFlight` requests at a time) and waits until the
 * EndpointSlice controller has written every Service's slice with all its pods.
 */
export async function applyScaleFixture(
  cp: ControlPlane,
  shape: ScaleShape,
  options: { inFlight?: number; timeoutMs?: number } = {},
): Promise<void> {
  const inFlight = options.inFlight ?? 8;
  const namespaces = scaleNamespaces(shape);
  await pool(namespaces, inFlight, (name) =>
    must(cp, "POST", "/api/v1/namespaces", {
      apiVersion: "v1",
      kind: "Namespace",
      metadata: { name },
    }));
  // Pods before Services: the controller then writes each slice once, complete.
  const pods = namespaces.flatMap((namespace, n) =>
    podNames(shape).map((name, p) => ({ namespace, name, ip: `10.245.${n}.${p + 1}` }))
  );
  await pool(
    pods,
    inFlight,
    (pod) => createReadyPod(cp, pod.namespace, pod.name, LABELS, PORT, pod.ip),
  );
  await pool(
    scaleServices(shape),
    inFlight,
    (s) =>
      must(cp, "POST", `/api/v1/namespaces/${s.namespace}/services`, {
        apiVersion: "v1",
        kind: "Service",
        metadata: { name: s.name, namespace: s.namespace },
        spec: { selector: LABELS, ports: [{ name: "http", port: 80, targetPort: "http" }] },
      }),
  );
  await waitForSlices(cp, shape, options.timeoutMs ?? 120_000);
}

/** Waits until every Service of the shape has a slice listing all of its namespace's pods. */
async function waitForSlices(cp: ControlPlane, shape: ScaleShape, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  let complete = 0;
  while (Date.now() < deadline) {
    const response = await cp.request(
      "GET",
      "/apis/discovery.k8s.io/v1/endpointslices?labelSelector=kubernetes.io%2Fservice-name",
    );
    const list = json<{ items: { endpoints?: { conditions?: { ready?: boolean } }[] }[] }>(
      response,
    );
    complete = list.items.filter((slice) =>
      (slice.endpoints ?? []).filter((e) =>
        e.conditions?.ready !== false
      ).length ===
        shape.podsPerNamespace
    ).length;
    if (complete >= shape.services) return;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(
    `the EndpointSlice controller wrote ${complete} of ${shape.services} complete slices within ${
      timeoutMs / 1000
    } s (is kube-controller-manager running?)`,
  );
}

function podNames(shape: ScaleShape): string[] {
  return Array.from({ length: shape.podsPerNamespace }, (_, i) => `app-${i}`);
}

/** Runs `task` for every item, at most `limit` at a time; the first failure rejects. */
async function pool<T>(items: T[], limit: number, task: (item: T) => Promise<unknown>) {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await task(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

function pad(n: number, width: number): string {
  return String(n).padStart(width, "0");
}
