/**
 * Writes to the simulated API server, as a real one answers them, so kubectl or client-node can
 * change the cluster while k8stun watches it: create (POST, 201), replace (PUT), patch (PATCH:
 * merge, strategic merge, JSON Patch; see patch.ts) and delete (DELETE) of Namespaces, Services
 * and Pods. EndpointSlices follow as the EndpointSlice controller would (state.ts); writing them
 * is refused. A created pod's ports are real servers (pod_servers.ts), so port-forward reaches
 * it at once.
 *
 * What the simulator cannot be asked: dry runs, server-side apply, collection deletes and changes
 * to a pod's spec (as in a real cluster, a pod's spec is fixed once created). A pod's readiness
 * changes through its `status` subresource (its `Ready` condition), as a kubelet would change it.
 * Bounds: bodies of {@link MAX_BODY_BYTES}, {@link MAX_OBJECTS} per kind, pods of
 * {@link MAX_POD_PORTS} ports (each is a listening socket).
 */
import { status } from "./status.ts";
import { parse as parseYaml } from "yaml";
import { InvalidObject, namespaceFrom, podFrom, serviceFrom } from "./api_objects.ts";
import { applyPatch, JSON_PATCH, MERGE_PATCH, PatchError, STRATEGIC_MERGE_PATCH } from "./patch.ts";
import type { Kind, KubeObject, PodSource, SimState } from "./state.ts";

/** The largest request body taken (the API server's own limit is 3 MiB). */
export const MAX_BODY_BYTES = 1024 * 1024;
/** Objects of one kind the simulated cluster holds before creates are refused (quota). */
export const MAX_OBJECTS = 10_000;
/** Container ports of one created pod. */
export const MAX_POD_PORTS = 64;

/** What a write changes beyond the stored objects: a pod's servers start and stop with it. */
export interface SimPods {
  add(namespace: string, pod: PodSource): void;
  remove(namespace: string, name: string): void;
}

/** One write request, routed. */
export interface SimWrite {
  method: string;
  kind: Kind;
  namespace?: string;
  name?: string;
  /** `status` for `pods/{name}/status`. */
  subresource?: string;
  url: URL;
  contentType: string;
  body: string;
}

/** Handles a write. */
export function handleSimWrite(
  write: SimWrite,
  state: SimState,
  pods: SimPods,
): Response {
  const { kind, namespace, name } = write;
  if (kind === "endpointslices") {
    return status(
      405,
      "MethodNotAllowed",
      "EndpointSlices in the simulated cluster follow its Services and Pods: write those instead",
    );
  }
  if (write.url.searchParams.has("dryRun")) {
    return status(400, "BadRequest", "the simulated cluster does not do dry runs; drop --dry-run");
  }
  if (write.subresource !== undefined && !(kind === "pods" && write.subresource === "status")) {
    return status(404, "NotFound", "the server could not find the requested resource");
  }
  if (kind !== "namespaces" && namespace === undefined) {
    return status(405, "MethodNotAllowed", `${write.method} needs a namespace in the path`);
  }
  if (namespace !== undefined && !state.get("namespaces", undefined, namespace)) {
    return status(404, "NotFound", `namespaces "${namespace}" not found`, {
      name: namespace,
      kind: "namespaces",
    });
  }
  try {
    switch (write.method) {
      case "POST":
        if (name !== undefined) break;
        return create(write, state, pods);
      case "PUT":
      case "PATCH": {
        if (name === undefined) break;
        const current = state.get(kind, namespace, name);
        if (!current) return notFound(kind, name);
        const next = write.method === "PUT"
          ? parseBody(write)
          : applyPatch(patchType(write.contentType), current, parseJson(write.body));
        return update(write, name, current, next as Raw, state);
      }
      case "DELETE":
        if (name === undefined) break;
        return remove(write, name, state, pods);
    }
  } catch (error) {
    if (error instanceof InvalidObject) {
      return status(422, "Invalid", error.message, {
        name: error.objectName,
        kind: error.kind,
        causes: error.causes,
      });
    }
    if (error instanceof RequestError) return status(error.code, error.reason, error.message);
    if (error instanceof PatchError) return status(422, "Invalid", error.message);
    if (error instanceof RangeError) {
      return status(400, "BadRequest", "the request body nests too deeply");
    }
    throw error;
  }
  return status(
    405,
    "MethodNotAllowed",
    `${write.method} on ${write.url.pathname} is not supported by the simulated cluster`,
  );
}

type Raw = Record<string, unknown>;

/** A request that is wrong as sent (400, 409, 415). */
class RequestError extends Error {
  constructor(readonly code: number, readonly reason: string, message: string) {
    super(message);
  }
}

const KIND_OF: Record<Kind, string> = {
  namespaces: "Namespace",
  services: "Service",
  pods: "Pod",
  endpointslices: "EndpointSlice",
};

function notFound(kind: Kind, name: string): Response {
  return status(404, "NotFound", `${kind} "${name}" not found`, { name, kind });
}

function ok(object: unknown, code = 200): Response {
  return new Response(JSON.stringify(object) + "\n", {
    status: code,
    headers: { "content-type": "application/json" },
  });
}

function parseJson(body: string): unknown {
  try {
    return JSON.parse(body);
  } catch (error) {
    if (error instanceof RangeError) throw error;
    throw new RequestError(400, "BadRequest", `the request body is not JSON: ${error}`);
  }
}

/** An object body: JSON, or YAML when the client says so (the API server takes both). */
function parseBody(write: SimWrite): Raw {
  const type = write.contentType;
  let parsed: unknown;
  if (type === "" || type === "application/json") parsed = parseJson(write.body);
  else if (type === "application/yaml") {
    try {
      parsed = parseYaml(write.body);
    } catch (error) {
      throw new RequestError(400, "BadRequest", `the request body is not YAML: ${error}`);
    }
  } else {
    // kubectl's typed commands (create namespace, create service) send protobuf.
    throw new RequestError(
      415,
      "UnsupportedMediaType",
      `the simulated cluster takes application/json or application/yaml, not ${type}; ` +
        "with kubectl, write a manifest and use kubectl apply -f or kubectl create -f",
    );
  }
  if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new RequestError(400, "BadRequest", "the request body must be a JSON object");
  }
  return parsed as Raw;
}

function patchType(contentType: string): string {
  if ([MERGE_PATCH, STRATEGIC_MERGE_PATCH, JSON_PATCH].includes(contentType)) return contentType;
  throw new RequestError(
    415,
    "UnsupportedMediaType",
    `the simulated cluster takes patches of type ${MERGE_PATCH}, ${STRATEGIC_MERGE_PATCH} or ` +
      `${JSON_PATCH}, not ${contentType || "none"} (server-side apply is not simulated)`,
  );
}

function metadataOf(object: Raw): Raw {
  const metadata = object.metadata;
  return metadata && typeof metadata === "object" && !Array.isArray(metadata)
    ? metadata as Raw
    : {};
}

function create(write: SimWrite, state: SimState, pods: SimPods): Response {
  const { kind, namespace } = write;
  const object = parseBody(write);
  const metadata = metadataOf(object);
  if (metadata.namespace !== undefined && metadata.namespace !== namespace) {
    throw new RequestError(
      400,
      "BadRequest",
      "the namespace of the provided object does not match the namespace sent on the request",
    );
  }
  const name = typeof metadata.name === "string" && metadata.name !== ""
    ? metadata.name
    : typeof metadata.generateName === "string" && metadata.generateName !== ""
    ? metadata.generateName + randomSuffix()
    : undefined;
  if (name === undefined) {
    throw new InvalidObject(KIND_OF[kind], "", [{
      reason: "FieldValueRequired",
      field: "metadata.name",
      message: "name or generateName is required",
    }]);
  }
  if (state.get(kind, namespace, name)) {
    return status(409, "AlreadyExists", `${kind} "${name}" already exists`, { name, kind });
  }
  if (state.list(kind).length >= MAX_OBJECTS) {
    return status(
      403,
      "Forbidden",
      `${kind} "${name}" is forbidden: exceeded quota: the simulated cluster holds at most ` +
        `${MAX_OBJECTS} ${kind}`,
    );
  }
  switch (kind) {
    case "namespaces":
      state.addNamespace(name, namespaceFrom(object, name));
      break;
    case "services": {
      const service = serviceFrom(object, name);
      checkClusterIp(state, service.clusterIP, `${namespace}/${name}`);
      state.addService(namespace!, service);
      break;
    }
    case "pods": {
      const pod = podFrom(object, name);
      checkPodPorts(pod);
      pods.add(namespace!, pod);
      break;
    }
  }
  return ok(state.get(kind, namespace, name), 201);
}

function checkClusterIp(state: SimState, ip: string | undefined, self: string): void {
  const holder = ip ? state.serviceWithClusterIp(ip) : undefined;
  if (ip && holder && holder !== self) {
    throw new InvalidObject("Service", self.split("/")[1], [{
      reason: "FieldValueInvalid",
      field: "spec.clusterIP",
      message: `Invalid value: "${ip}": provided IP is already allocated (to ${holder})`,
    }]);
  }
}

function checkPodPorts(pod: PodSource): void {
  if (pod.ports.length > MAX_POD_PORTS) {
    throw new InvalidObject("Pod", pod.name, [{
      reason: "FieldValueInvalid",
      field: "spec.containers",
      message: `a pod in the simulated cluster has at most ${MAX_POD_PORTS} container ports ` +
        `(each is a listening socket); this one has ${pod.ports.length}`,
    }]);
  }
}

/** PUT and PATCH: `next` is the object as it should be. */
function update(
  write: SimWrite,
  name: string,
  current: KubeObject,
  next: Raw,
  state: SimState,
): Response {
  const { kind, namespace } = write;
  if (!next || typeof next !== "object" || Array.isArray(next)) {
    throw new RequestError(400, "BadRequest", "the result of the patch is not an object");
  }
  const metadata = metadataOf(next);
  if (metadata.name !== undefined && metadata.name !== name) {
    throw new RequestError(
      400,
      "BadRequest",
      `the name of the object (${
        String(metadata.name)
      }) does not match the name on the URL (${name})`,
    );
  }
  // Optimistic concurrency: a resourceVersion the client sent must still be the current one.
  const sentVersion = metadata.resourceVersion;
  if (
    sentVersion !== undefined && sentVersion !== "" &&
    sentVersion !== current.metadata.resourceVersion
  ) {
    return status(
      409,
      "Conflict",
      `Operation cannot be fulfilled on ${kind} "${name}": the object has been modified; ` +
        "please apply your changes to the latest version and try again",
      { name, kind },
    );
  }
  switch (kind) {
    case "namespaces":
      state.addNamespace(name, namespaceFrom(next, name));
      break;
    case "services": {
      const service = serviceFrom(next, name);
      const before = (current.spec as { clusterIP?: string }).clusterIP;
      const after = (next.spec as { clusterIP?: string } | undefined)?.clusterIP;
      if (after !== undefined && after !== "" && before !== undefined && after !== before) {
        throw new InvalidObject("Service", name, [{
          reason: "FieldValueInvalid",
          field: "spec.clusterIP",
          message: `Invalid value: "${after}": field is immutable`,
        }]);
      }
      state.addService(namespace!, service);
      break;
    }
    case "pods":
      if (write.subresource === "status") {
        state.setPodReady(namespace!, name, readyCondition(next) ?? podReady(current));
        break;
      } else {
        const pod = podFrom(next, name);
        if (canonical(next.spec) !== canonical(current.spec)) {
          throw new InvalidObject("Pod", name, [{
            reason: "FieldValueInvalid",
            field: "spec",
            message: "Forbidden: pod updates may not change the spec in the simulated cluster " +
              "(only metadata.labels and metadata.annotations); delete the pod and create it anew",
          }]);
        }
        state.relabelPod(namespace!, name, pod.labels, pod.annotations);
      }
      break;
  }
  return ok(state.get(kind, namespace, name));
}

/** The `Ready` condition a status write carries, if any. */
function readyCondition(object: Raw): boolean | undefined {
  const conditions = (object.status as { conditions?: unknown } | undefined)?.conditions;
  if (!Array.isArray(conditions)) return undefined;
  const ready = conditions.find((c) => c && typeof c === "object" && c.type === "Ready");
  return ready === undefined ? undefined : ready.status === "True";
}

function podReady(pod: KubeObject): boolean {
  return readyCondition(pod as Raw) ?? true;
}

function remove(
  write: SimWrite,
  name: string,
  state: SimState,
  pods: SimPods,
): Response {
  const { kind, namespace } = write;
  const current = state.get(kind, namespace, name);
  if (!current) return notFound(kind, name);
  switch (kind) {
    case "namespaces": {
      // The namespace controller empties it first; the simulator does it at once.
      for (const pod of state.list("pods", name)) pods.remove(name, pod.metadata.name);
      state.deleteNamespace(name);
      const now = new Date().toISOString().replace(/\.\d+Z$/, "Z");
      return ok({
        ...current,
        metadata: { ...current.metadata, deletionTimestamp: now },
        status: { phase: "Terminating" },
      });
    }
    case "services":
      state.deleteService(namespace!, name);
      break;
    case "pods":
      pods.remove(namespace!, name);
      break;
  }
  return ok(current);
}

/** JSON with members in sorted order: equal values compare equal whatever order a client sent. */
function canonical(value: unknown): string {
  return JSON.stringify(
    value,
    (_key, v) =>
      v && typeof v === "object" && !Array.isArray(v)
        ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0))
        : v,
  );
}

/** Five characters from the alphabet the API server's name generator uses. */
function randomSuffix(): string {
  const alphabet = "bcdfghjklmnpqrstvwxz2456789";
  const bytes = crypto.getRandomValues(new Uint8Array(5));
  return [...bytes].map((b) => alphabet[b % alphabet.length]).join("");
}
