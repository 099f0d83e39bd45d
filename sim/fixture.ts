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
 *         podIP: 10.244.0.20                # default: the next free 10.244.x.y
 *         hostname: db-0                    # StatefulSet-style: hostname + subdomain
 *         subdomain: db
 *         ready: true                       # default true
 *         ports: [{ name: pg, containerPort: 5432, serve: banner-echo }]
 * ```
 * `serve` says what the pod's port does: `http` (a page naming the pod), `echo` (TCP echo, the
 * default), `banner-echo` (the pod's name and a newline, then echo), `none` (nothing listens:
 * refused). A field the format does not know is an error naming its path (a misspelt `ip:`
 * silently ignored would make a fixture that does not say what its author meant).
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
  /** The pod's IP (default: allocated from 10.244.0.0/16). */
  podIP?: string;
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
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** Whether `text` is a dotted-quad IPv4 address (no leading zeros, each part 0-255). */
export function isIpv4(text: unknown): text is string {
  return typeof text === "string" && IPV4.test(text);
}

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

/** Validates a fixture object, filling in defaults; the first problem is thrown with its path. */
export function validateFixture(raw: unknown, source = "fixture"): Fixture {
  const fail = (path: string, message: string): never => {
    throw new Error(`${source}: ${path}: ${message}`);
  };
  /** A mapping with only the `known` keys (a typo is an error, not a silent default). */
  const mapping = (value: unknown, path: string, known: string[]): Record<string, unknown> => {
    if (!value || typeof value !== "object" || Array.isArray(value)) {
      return fail(path || "fixture", "must be a mapping");
    }
    for (const key of Object.keys(value)) {
      if (!known.includes(key)) {
        const hint = key === "ip" || key === "podIp" ? " (the pod's IP is podIP)" : "";
        fail(path ? `${path}.${key}` : key, `unknown field${hint}; known: ${known.join(", ")}`);
      }
    }
    return value as Record<string, unknown>;
  };
  const list = (value: unknown, path: string): unknown[] =>
    value === undefined || value === null
      ? []
      : Array.isArray(value)
      ? value
      : fail(path, "must be a list");
  const name = (value: unknown, path: string): string =>
    typeof value === "string" && NAME.test(value) && value.length <= 63
      ? value
      : fail(path, `"${String(value)}" is not a valid DNS-1123 label`);
  const optionalName = (value: unknown, path: string): string | undefined =>
    value === undefined ? undefined : name(value, path);
  const port = (value: unknown, path: string): number =>
    Number.isInteger(value) && (value as number) > 0 && (value as number) < 65536
      ? value as number
      : fail(path, "must be a port number 1-65535");
  const labels = (value: unknown, path: string): Record<string, string> => {
    if (value === undefined || value === null) return {};
    if (typeof value !== "object" || Array.isArray(value)) return fail(path, "must be a mapping");
    for (const [k, v] of Object.entries(value)) {
      if (typeof v !== "string") fail(`${path}.${k}`, "must be a string");
    }
    return value as Record<string, string>;
  };
  const boolean = (value: unknown, path: string, fallback: boolean): boolean =>
    value === undefined
      ? fallback
      : typeof value === "boolean"
      ? value
      : fail(path, "must be true or false");

  const top = mapping(raw, "", ["namespaces", "faults"]);
  if (!Array.isArray(top.namespaces)) fail("namespaces", "must be a list");
  const podIPs = new Map<string, string>();
  const namespaces = (top.namespaces as unknown[]).map((rawNs, i): FixtureNamespace => {
    const at = `namespaces[${i}]`;
    const ns = mapping(rawNs, at, ["name", "services", "pods"]);
    const services = list(ns.services, `${at}.services`).map((rawService, j): FixtureService => {
      const sat = `${at}.services[${j}]`;
      const s = mapping(rawService, sat, ["name", "selector", "headless", "externalName", "ports"]);
      if (s.externalName !== undefined && typeof s.externalName !== "string") {
        fail(`${sat}.externalName`, "must be a DNS name");
      }
      return {
        name: name(s.name, `${sat}.name`),
        selector: s.selector === undefined ? undefined : labels(s.selector, `${sat}.selector`),
        headless: boolean(s.headless, `${sat}.headless`, false),
        externalName: s.externalName as string | undefined,
        ports: list(s.ports, `${sat}.ports`).map((rawPort, k): FixtureServicePort => {
          const pat = `${sat}.ports[${k}]`;
          const p = mapping(rawPort, pat, ["name", "port", "targetPort", "protocol"]);
          const number = port(p.port, `${pat}.port`);
          if (p.protocol !== undefined && p.protocol !== "TCP" && p.protocol !== "UDP") {
            fail(`${pat}.protocol`, "must be TCP or UDP");
          }
          return {
            name: optionalName(p.name, `${pat}.name`),
            port: number,
            targetPort: typeof p.targetPort === "string"
              ? p.targetPort
              : p.targetPort === undefined
              ? number
              : port(p.targetPort, `${pat}.targetPort`),
            protocol: p.protocol === "UDP" ? "UDP" : "TCP",
          };
        }),
      };
    });
    const pods = list(ns.pods, `${at}.pods`).map((rawPod, j): FixturePod => {
      const pat = `${at}.pods[${j}]`;
      const p = mapping(rawPod, pat, [
        "name",
        "labels",
        "hostname",
        "subdomain",
        "ready",
        "ports",
        "podIP",
      ]);
      if (p.podIP !== undefined) {
        if (!isIpv4(p.podIP)) fail(`${pat}.podIP`, `"${String(p.podIP)}" is not an IPv4 address`);
        const holder = podIPs.get(p.podIP as string);
        if (holder) fail(`${pat}.podIP`, `${p.podIP} is already the IP of ${holder}`);
        podIPs.set(p.podIP as string, pat);
      }
      return {
        name: name(p.name, `${pat}.name`),
        labels: labels(p.labels, `${pat}.labels`),
        hostname: optionalName(p.hostname, `${pat}.hostname`),
        subdomain: optionalName(p.subdomain, `${pat}.subdomain`),
        ready: boolean(p.ready, `${pat}.ready`, true),
        ports: list(p.ports, `${pat}.ports`).map((rawPort, k): FixturePort => {
          const cat = `${pat}.ports[${k}]`;
          const c = mapping(rawPort, cat, ["name", "containerPort", "serve"]);
          const serve = (c.serve ?? "echo") as PortBehaviour;
          if (!BEHAVIOURS.includes(serve)) {
            fail(`${cat}.serve`, `must be one of ${BEHAVIOURS.join(", ")}`);
          }
          return {
            name: optionalName(c.name, `${cat}.name`),
            containerPort: port(c.containerPort, `${cat}.containerPort`),
            serve,
          };
        }),
        ...(p.podIP !== undefined ? { podIP: p.podIP as string } : {}),
      };
    });
    return { name: name(ns.name, `${at}.name`), services, pods };
  });
  const faults = list(top.faults, "faults").map((f, i) => fault(f, `faults[${i}]`));
  return { namespaces, faults };

  function fault(raw: unknown, at: string): FixtureFault {
    const f = mapping(raw, at, ["namespace", "pod", "port", "kind", "afterBytes"]);
    const where = {
      namespace: name(f.namespace, `${at}.namespace`),
      pod: name(f.pod, `${at}.pod`),
      port: port(f.port, `${at}.port`),
    };
    switch (f.kind) {
      case "refuse":
      case "stall":
        if (f.afterBytes !== undefined) fail(`${at}.afterBytes`, "applies to kind reset only");
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
