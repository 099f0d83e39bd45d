/**
 * The simulated cluster's fixture format (YAML or JSON), which also powers `k8stun demo` and
 * `k8stun sim --fixture FILE`:
 *
 * ```yaml
 * namespaces:
 *   - name: demo
 *     services:
 *       - name: hello                       # ClusterIP service selecting pods by label
 *         selector: { app: hello }
 *         ports: [{ name: http, port: 80, targetPort: http }]   # targetPort: number or port name
 *       - name: db
 *         headless: true                    # clusterIP: None
 *         selector: { app: db }
 *         ports: [{ name: pg, port: 5432 }]
 *       - name: search
 *         externalName: search.example.com  # ExternalName service
 *     pods:
 *       - name: db-0
 *         labels: { app: db }
 *         hostname: db-0                    # StatefulSet-style: hostname + subdomain
 *         subdomain: db
 *         ready: true                       # default true
 *         ports: [{ name: pg, containerPort: 5432, serve: banner-echo }]
 * ```
 * `serve` says what the pod's port does: `http` (a page naming the pod), `echo` (TCP echo),
 * `banner-echo` (the pod's name and a newline, then echo), `none` (nothing listens: refused).
 *
 * An optional top-level `faults` list switches on port-forward faults from the start (tests can
 * also set them at run time through `SimCluster.faults`):
 *
 * ```yaml
 * faults:
 *   - { namespace: demo, pod: hello-7d9f-x2k4p, port: 8080, kind: refuse }
 *   - { namespace: demo, pod: echo-5c6b-m9t2z, port: 7007, kind: reset, afterBytes: 1000 }
 *   - { namespace: demo, pod: db-1, port: 5432, kind: stall }   # the kubelet never answers
 * ```
 */
import { parse as parseYaml } from "yaml";
import type { PortForwardFault } from "./faults.ts";

/** What a simulated pod port serves. */
export type PortBehaviour = "http" | "echo" | "banner-echo" | "none";

/** A container port of a fixture pod. */
export interface FixturePort {
  name?: string;
  containerPort: number;
  serve: PortBehaviour;
}

/** A fixture pod. */
export interface FixturePod {
  name: string;
  labels: Record<string, string>;
  hostname?: string;
  subdomain?: string;
  ready: boolean;
  ports: FixturePort[];
}

/** A fixture service port. */
export interface FixtureServicePort {
  name?: string;
  port: number;
  targetPort: number | string;
  protocol: "TCP" | "UDP";
}

/** A fixture service. */
export interface FixtureService {
  name: string;
  selector?: Record<string, string>;
  headless: boolean;
  externalName?: string;
  ports: FixtureServicePort[];
}

/** A fixture namespace. */
export interface FixtureNamespace {
  name: string;
  services: FixtureService[];
  pods: FixturePod[];
}

/** A port-forward fault switched on from the start. */
export type FixtureFault = { namespace: string; pod: string; port: number } & PortForwardFault;

/** A whole fixture. */
export interface Fixture {
  namespaces: FixtureNamespace[];
  faults?: FixtureFault[];
}

const NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const BEHAVIOURS: PortBehaviour[] = ["http", "echo", "banner-echo", "none"];

/** Parses fixture text (YAML or JSON) and validates it; errors name the offending path. */
export function parseFixture(text: string, source = "fixture"): Fixture {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (error) {
    throw new Error(`${source}: not valid YAML/JSON: ${(error as Error).message}`);
  }
  return validateFixture(raw, source);
}

/** Validates a fixture object, filling in defaults. */
export function validateFixture(raw: unknown, source = "fixture"): Fixture {
  const fail = (path: string, message: string): never => {
    throw new Error(`${source}: ${path}: ${message}`);
  };
  const obj = raw as { namespaces?: unknown };
  if (!obj || typeof obj !== "object" || !Array.isArray(obj.namespaces)) {
    fail("namespaces", "must be a list");
  }
  const name = (value: unknown, path: string): string =>
    typeof value === "string" && NAME.test(value)
      ? value
      : fail(path, `"${String(value)}" is not a valid DNS-1123 name`);
  const port = (value: unknown, path: string): number =>
    Number.isInteger(value) && (value as number) > 0 && (value as number) < 65536
      ? value as number
      : fail(path, "must be a port number 1-65535");
  const namespaces = (obj.namespaces as Record<string, unknown>[]).map(
    (ns, i): FixtureNamespace => {
      const at = `namespaces[${i}]`;
      const services = ((ns.services ?? []) as Record<string, unknown>[]).map(
        (s, j): FixtureService => {
          const sat = `${at}.services[${j}]`;
          return {
            name: name(s.name, `${sat}.name`),
            selector: s.selector as Record<string, string> | undefined,
            headless: s.headless === true,
            externalName: s.externalName as string | undefined,
            ports: ((s.ports ?? []) as Record<string, unknown>[]).map((
              p,
              k,
            ): FixtureServicePort => ({
              name: p.name as string | undefined,
              port: port(p.port, `${sat}.ports[${k}].port`),
              targetPort: typeof p.targetPort === "string"
                ? p.targetPort
                : p.targetPort === undefined
                ? port(p.port, `${sat}.ports[${k}].port`)
                : port(p.targetPort, `${sat}.ports[${k}].targetPort`),
              protocol: p.protocol === "UDP" ? "UDP" : "TCP",
            })),
          };
        },
      );
      const pods = ((ns.pods ?? []) as Record<string, unknown>[]).map((p, j): FixturePod => {
        const pat = `${at}.pods[${j}]`;
        return {
          name: name(p.name, `${pat}.name`),
          labels: (p.labels ?? {}) as Record<string, string>,
          hostname: p.hostname as string | undefined,
          subdomain: p.subdomain as string | undefined,
          ready: p.ready !== false,
          ports: ((p.ports ?? []) as Record<string, unknown>[]).map((c, k): FixturePort => {
            const serve = (c.serve ?? "echo") as PortBehaviour;
            if (!BEHAVIOURS.includes(serve)) {
              fail(`${pat}.ports[${k}].serve`, `must be one of ${BEHAVIOURS.join(", ")}`);
            }
            return {
              name: c.name as string | undefined,
              containerPort: port(c.containerPort, `${pat}.ports[${k}].containerPort`),
              serve,
            };
          }),
        };
      });
      return { name: name(ns.name, `${at}.name`), services, pods };
    },
  );
  const faults = ((raw as { faults?: unknown }).faults ?? []) as Record<string, unknown>[];
  if (!Array.isArray(faults)) fail("faults", "must be a list");
  return { namespaces, faults: faults.map((f, i) => fault(f, `faults[${i}]`)) };

  function fault(f: Record<string, unknown>, at: string): FixtureFault {
    const where = {
      namespace: name(f.namespace, `${at}.namespace`),
      pod: name(f.pod, `${at}.pod`),
      port: port(f.port, `${at}.port`),
    };
    switch (f.kind) {
      case "refuse":
      case "stall":
        return { ...where, kind: f.kind };
      case "reset": {
        const afterBytes = f.afterBytes ?? 0;
        if (!Number.isInteger(afterBytes) || (afterBytes as number) < 0) {
          fail(`${at}.afterBytes`, "must be a whole number of bytes");
        }
        return { ...where, kind: "reset", afterBytes: afterBytes as number };
      }
      default:
        return fail(`${at}.kind`, "must be one of refuse, reset, stall");
    }
  }
}
