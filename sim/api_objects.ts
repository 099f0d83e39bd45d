/**
 * Objects a client writes (create, replace, or the result of a patch) turned into what the
 * simulator keeps, checked the way the API server's validation checks them: a problem is an
 * {@link InvalidObject} naming the field's path (`spec.containers[0].ports[1].containerPort`),
 * answered as 422 Invalid.
 *
 * What a created pod's ports serve is not in a real Pod; the annotation
 * `k8stun.sim/serve` says it: one behaviour for every port (`http`, `echo`, `banner-echo`,
 * `none`), or a list such as `8080=http,7007=echo`. Without it, a port named `http…` serves HTTP
 * and the others echo.
 */
import { isIpv4, type PortBehaviour } from "./fixture.ts";
import type { NamespaceSource, PodSource, ServiceSource } from "./state.ts";

/** The annotation that says what a created pod's ports serve. */
export const SERVE_ANNOTATION = "k8stun.sim/serve";

const BEHAVIOURS: PortBehaviour[] = ["http", "echo", "banner-echo", "none"];
/** RFC 1123 label (Kubernetes' DNS-1123 label: names of namespaces, services, ports). */
const LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** RFC 1123 subdomain (Kubernetes' object names for pods). */
const SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** One field problem, as a Status `details.causes` entry. */
export interface Cause {
  reason: "FieldValueInvalid" | "FieldValueRequired" | "FieldValueNotSupported";
  message: string;
  field: string;
}

/** A written object that fails validation. */
export class InvalidObject extends Error {
  constructor(readonly kind: string, readonly objectName: string, readonly causes: Cause[]) {
    super(
      `${kind} "${objectName}" is invalid: ` +
        causes.map((c) => `${c.field}: ${c.message}`).join(", "),
    );
    this.name = "InvalidObject";
  }
}

type Raw = Record<string, unknown>;

/** Collects causes while reading an object; `done()` throws them all at once. */
class Checker {
  readonly causes: Cause[] = [];
  constructor(readonly kind: string, readonly objectName: string) {}

  invalid(field: string, value: unknown, why: string): undefined {
    this.causes.push({
      reason: "FieldValueInvalid",
      field,
      message: `Invalid value: ${JSON.stringify(value) ?? "undefined"}: ${why}`,
    });
    return undefined;
  }

  required(field: string): undefined {
    this.causes.push({ reason: "FieldValueRequired", field, message: "Required value" });
    return undefined;
  }

  unsupported(field: string, value: unknown, supported: string[]): undefined {
    this.causes.push({
      reason: "FieldValueNotSupported",
      field,
      message: `Unsupported value: ${JSON.stringify(value)}: supported values: ${
        supported.map((s) => `"${s}"`).join(", ")
      }`,
    });
    return undefined;
  }

  object(value: unknown, field: string): Raw {
    if (value === undefined || value === null) return {};
    if (typeof value === "object" && !Array.isArray(value)) return value as Raw;
    this.invalid(field, value, "must be an object");
    return {};
  }

  list(value: unknown, field: string): unknown[] {
    if (value === undefined || value === null) return [];
    if (Array.isArray(value)) return value;
    this.invalid(field, value, "must be a list");
    return [];
  }

  strings(value: unknown, field: string): Record<string, string> {
    const map = this.object(value, field);
    for (const [k, v] of Object.entries(map)) {
      if (typeof v !== "string") this.invalid(`${field}.${k}`, v, "must be a string");
    }
    return map as Record<string, string>;
  }

  port(value: unknown, field: string): number | undefined {
    if (value === undefined) return this.required(field);
    return Number.isInteger(value) && (value as number) > 0 && (value as number) < 65536
      ? value as number
      : this.invalid(field, value, "must be between 1 and 65535, inclusive");
  }

  label(value: unknown, field: string): string | undefined {
    if (value === undefined) return undefined;
    return typeof value === "string" && value.length <= 63 && LABEL.test(value)
      ? value
      : this.invalid(field, value, "must be a DNS-1123 label (lower case a-z, 0-9 and '-')");
  }

  done(): void {
    if (this.causes.length > 0) throw new InvalidObject(this.kind, this.objectName, this.causes);
  }
}

/** Checks a written object's kind and name (the name is already resolved from the URL or body). */
function checkHeader(c: Checker, object: Raw, kind: string, nameRule: RegExp): Raw {
  if (object.kind !== undefined && object.kind !== kind) {
    c.invalid("kind", object.kind, `must be ${kind}`);
  }
  const metadata = c.object(object.metadata, "metadata");
  if (!nameRule.test(c.objectName) || c.objectName.length > 253) {
    c.invalid("metadata.name", c.objectName, "must be a lower case RFC 1123 name");
  }
  return metadata;
}

/** A Namespace. */
export function namespaceFrom(object: Raw, name: string): NamespaceSource {
  const c = new Checker("Namespace", name);
  const metadata = checkHeader(c, object, "Namespace", LABEL);
  const source = {
    labels: c.strings(metadata.labels, "metadata.labels"),
    annotations: c.strings(metadata.annotations, "metadata.annotations"),
  };
  c.done();
  return source;
}

/** A Service of type ClusterIP (also headless) or ExternalName. */
export function serviceFrom(object: Raw, name: string): ServiceSource {
  const c = new Checker("Service", name);
  const metadata = checkHeader(c, object, "Service", LABEL);
  const spec = c.object(object.spec, "spec");
  const type = spec.type ?? (spec.externalName !== undefined ? "ExternalName" : "ClusterIP");
  if (type !== "ClusterIP" && type !== "ExternalName") {
    c.unsupported("spec.type", type, ["ClusterIP", "ExternalName"]);
  }
  const externalName = type === "ExternalName"
    ? typeof spec.externalName === "string" && SUBDOMAIN.test(spec.externalName)
      ? spec.externalName
      : c.invalid("spec.externalName", spec.externalName, "must be a DNS name")
    : undefined;
  const rawIp = spec.clusterIP;
  let clusterIP: string | undefined;
  if (rawIp !== undefined && rawIp !== "" && rawIp !== "None") {
    clusterIP = isIpv4(rawIp)
      ? rawIp
      : c.invalid("spec.clusterIP", rawIp, "must be a valid IPv4 address, None or empty");
  }
  const rawPorts = c.list(spec.ports, "spec.ports");
  if (type === "ClusterIP" && rawPorts.length === 0 && rawIp !== "None") {
    c.required("spec.ports");
  }
  const ports = rawPorts.map((raw, i) => {
    const at = `spec.ports[${i}]`;
    const p = c.object(raw, at);
    const port = c.port(p.port, `${at}.port`);
    const protocol = p.protocol ?? "TCP";
    if (protocol !== "TCP" && protocol !== "UDP") {
      c.unsupported(`${at}.protocol`, protocol, ["TCP", "UDP"]);
    }
    const portName = c.label(p.name, `${at}.name`);
    if (rawPorts.length > 1 && portName === undefined && p.name === undefined) {
      c.required(`${at}.name`);
    }
    const targetPort = typeof p.targetPort === "string" && p.targetPort !== ""
      ? c.label(p.targetPort, `${at}.targetPort`)
      : p.targetPort === undefined || p.targetPort === 0 || p.targetPort === ""
      ? port
      : c.port(p.targetPort, `${at}.targetPort`);
    return {
      ...(portName ? { name: portName } : {}),
      port: port ?? 0,
      targetPort: targetPort ?? 0,
      protocol: protocol === "UDP" ? "UDP" as const : "TCP" as const,
    };
  });
  const source: ServiceSource = {
    name,
    selector: spec.selector === undefined || spec.selector === null
      ? undefined
      : c.strings(spec.selector, "spec.selector"),
    headless: rawIp === "None",
    externalName,
    ports,
    ...(clusterIP ? { clusterIP } : {}),
    labels: c.strings(metadata.labels, "metadata.labels"),
    annotations: c.strings(metadata.annotations, "metadata.annotations"),
  };
  c.done();
  return source;
}

/** A Pod: its containers' ports become real servers (what they serve: {@link SERVE_ANNOTATION}). */
export function podFrom(object: Raw, name: string): PodSource {
  const c = new Checker("Pod", name);
  const metadata = checkHeader(c, object, "Pod", SUBDOMAIN);
  const spec = c.object(object.spec, "spec");
  const annotations = c.strings(metadata.annotations, "metadata.annotations");
  const serve = serveRule(c, annotations[SERVE_ANNOTATION]);
  const containers = c.list(spec.containers, "spec.containers");
  if (containers.length === 0) c.required("spec.containers");
  const seen = new Set<number>();
  const ports = containers.flatMap((raw, i) => {
    const container = c.object(raw, `spec.containers[${i}]`);
    if (typeof container.name !== "string" || !LABEL.test(container.name)) {
      c.invalid(`spec.containers[${i}].name`, container.name, "must be a DNS-1123 label");
    }
    return c.list(container.ports, `spec.containers[${i}].ports`).flatMap((rawPort, j) => {
      const at = `spec.containers[${i}].ports[${j}]`;
      const p = c.object(rawPort, at);
      const containerPort = c.port(p.containerPort, `${at}.containerPort`);
      const portName = c.label(p.name, `${at}.name`);
      if (containerPort === undefined) return [];
      if (seen.has(containerPort)) {
        c.invalid(`${at}.containerPort`, containerPort, "is declared twice");
        return [];
      }
      seen.add(containerPort);
      const udp = p.protocol === "UDP";
      return [{
        ...(portName ? { name: portName } : {}),
        containerPort,
        serve: udp ? "none" as const : serve(containerPort, portName),
      }];
    });
  });
  const source: PodSource = {
    name,
    labels: c.strings(metadata.labels, "metadata.labels"),
    annotations,
    hostname: c.label(spec.hostname, "spec.hostname"),
    subdomain: c.label(spec.subdomain, "spec.subdomain"),
    ready: true,
    ports,
    containers: structuredClone(containers),
  };
  c.done();
  return source;
}

/** The annotation's rule: what each port serves. */
function serveRule(
  c: Checker,
  annotation: string | undefined,
): (port: number, name?: string) => PortBehaviour {
  const field = `metadata.annotations[${SERVE_ANNOTATION}]`;
  const fallback = (_port: number, name?: string): PortBehaviour =>
    name?.startsWith("http") ? "http" : "echo";
  if (annotation === undefined) return fallback;
  const behaviour = (text: string): PortBehaviour | undefined =>
    BEHAVIOURS.includes(text as PortBehaviour)
      ? text as PortBehaviour
      : c.unsupported(field, text, BEHAVIOURS);
  if (!annotation.includes("=")) {
    const all = behaviour(annotation.trim()) ?? "echo";
    return () => all;
  }
  const byPort = new Map<number, PortBehaviour>();
  for (const term of annotation.split(",")) {
    const [port, what] = term.split("=").map((s) => s.trim());
    const n = Number(port);
    if (!Number.isInteger(n) || n < 1 || n > 65535) {
      c.invalid(field, annotation, `"${term}" is not PORT=BEHAVIOUR`);
      continue;
    }
    const b = behaviour(what ?? "");
    if (b) byPort.set(n, b);
  }
  return (port, name) => byPort.get(port) ?? fallback(port, name);
}
