/**
 * The check between the API's JSON and the cluster store: an object from a list or a watch event
 * is taken only when every field the store reads has the type the API gives it, and its names are
 * names Kubernetes allows (RFC 1123 labels and subdomains: lowercase letters, digits, `-` and
 * `.`). The API server validates all of this before it stores an object, so a misshapen one comes
 * from a broken or hostile server or proxy; it is reported and left out, and the rest of the list
 * or watch is kept — one bad object neither throws out of the store nor stops a kind from syncing.
 * An object that passes is a `KubeObject` (store.ts) as far as the store reads it.
 */
/** The kinds the cluster view lists and watches. */
export type Resource = "namespaces" | "services" | "pods" | "endpointslices";

/** A Kubernetes object name: an RFC 1123 subdomain (which every kind's names are, or narrower). */
const NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

type Check = (value: unknown, path: string) => string | undefined;

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/** `check` unless the field is absent (JSON null counts as absent, as the store reads it). */
const optional = (check: Check): Check => (value, path) =>
  value === undefined || value === null ? undefined : check(value, path);

const string: Check = (value, path) =>
  typeof value === "string" ? undefined : `${path} is not a string`;

const boolean: Check = (value, path) =>
  typeof value === "boolean" ? undefined : `${path} is not true or false`;

const name: Check = (value, path) =>
  typeof value === "string" && NAME.test(value) ? undefined : `${path} is not a Kubernetes name`;

const portNumber: Check = (value, path) =>
  Number.isInteger(value) && (value as number) >= 1 && (value as number) <= 65535
    ? undefined
    : `${path} is not a port number`;

/** A number, or the name of a container's port. */
const targetPort: Check = (value, path) =>
  typeof value === "string" && value !== "" ? undefined : portNumber(value, path);

/** An object whose listed fields pass their checks (other fields are not read). */
const fields = (checks: Record<string, Check>): Check => (value, path) => {
  if (!isObject(value)) return `${path} is not an object`;
  for (const [field, check] of Object.entries(checks)) {
    const problem = check(value[field], path ? `${path}.${field}` : field);
    if (problem) return problem;
  }
  return undefined;
};

const arrayOf = (check: Check): Check => (value, path) => {
  if (!Array.isArray(value)) return `${path} is not a list`;
  for (const [i, item] of value.entries()) {
    const problem = check(item, `${path}[${i}]`);
    if (problem) return problem;
  }
  return undefined;
};

const metadata = (namespaced: boolean) =>
  fields({
    name,
    namespace: namespaced ? name : optional(name),
    uid: optional(string),
    resourceVersion: optional(string),
    labels: optional(fields({ "kubernetes.io/service-name": optional(name) })),
  });

const SHAPES: Record<Resource, Check> = {
  namespaces: fields({ metadata: metadata(false) }),
  services: fields({
    metadata: metadata(true),
    spec: optional(fields({
      type: optional(string),
      clusterIP: optional(string),
      externalName: optional(string),
      ports: optional(arrayOf(fields({
        name: optional(string),
        port: portNumber,
        protocol: optional(string),
        targetPort: optional(targetPort),
      }))),
    })),
  }),
  pods: fields({
    metadata: metadata(true),
    spec: optional(fields({
      hostname: optional(string),
      subdomain: optional(string),
      containers: optional(arrayOf(fields({
        ports: optional(arrayOf(fields({
          name: optional(string),
          containerPort: portNumber,
          protocol: optional(string),
        }))),
      }))),
    })),
    status: optional(fields({
      podIP: optional(string),
      phase: optional(string),
      conditions: optional(arrayOf(fields({ type: optional(string), status: optional(string) }))),
    })),
  }),
  endpointslices: fields({
    metadata: metadata(true),
    addressType: optional(string),
    // A port without a number is not resolved yet (the store skips it).
    ports: optional(arrayOf(fields({ name: optional(string), port: optional(portNumber) }))),
    endpoints: optional(arrayOf(fields({
      addresses: optional(arrayOf(string)),
      conditions: optional(fields({ ready: optional(boolean), terminating: optional(boolean) })),
      hostname: optional(string),
      targetRef: optional(fields({
        kind: optional(string),
        namespace: optional(string),
        name: optional(string),
      })),
    }))),
  }),
};

/** What is wrong with `object` as a `resource` object for the store, or undefined if nothing. */
export function shapeProblem(resource: Resource, object: unknown): string | undefined {
  return SHAPES[resource](object, "");
}

/** "namespace/name" of an object, as far as it has them, for a report. */
export function objectName(object: unknown): string {
  const meta = isObject(object) && isObject(object.metadata) ? object.metadata : {};
  const text = (value: unknown) =>
    typeof value === "string" ? JSON.stringify(value).slice(1, -1).slice(0, 80) : "?";
  return meta.namespace === undefined
    ? text(meta.name)
    : `${text(meta.namespace)}/${text(meta.name)}`;
}
