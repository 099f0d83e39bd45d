/**
 * The patch formats a Kubernetes API server accepts on PATCH, applied to a stored object's JSON:
 *
 * - `application/merge-patch+json`: JSON Merge Patch (RFC 7386): objects merge, `null` deletes a
 *   member, anything else (lists included) replaces.
 * - `application/strategic-merge-patch+json`: a merge patch in which the lists Kubernetes declares
 *   with a merge key (containers by `name`, ports by `containerPort` or `port`, conditions by
 *   `type`, …) merge element by element, and `$patch: delete` / `$patch: replace` directives
 *   apply. A minimal form of what kubectl sends: no `$retainKeys`, `$setElementOrder` is ignored.
 * - `application/json-patch+json`: JSON Patch (RFC 6902) over JSON Pointers (RFC 6901).
 *
 * Every function returns a new value and leaves its inputs alone; a patch that cannot apply throws
 * a {@link PatchError} whose message says why.
 */

/** The patch media types. */
export const MERGE_PATCH = "application/merge-patch+json";
export const STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json";
export const JSON_PATCH = "application/json-patch+json";

/** A patch that does not apply (HTTP 422, or 400 for a malformed one). */
export class PatchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PatchError";
  }
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Applies `patch` of media type `type` to `target`. */
export function applyPatch(type: string, target: unknown, patch: unknown): unknown {
  switch (type) {
    case MERGE_PATCH:
      return mergePatch(target as Json, patch as Json);
    case STRATEGIC_MERGE_PATCH:
      return strategicMergePatch(target as Json, patch as Json, "");
    case JSON_PATCH:
      return jsonPatch(target as Json, patch);
    default:
      throw new PatchError(`unsupported patch type ${type}`);
  }
}

/** Sets a member as JSON.parse would: `__proto__` from a hostile patch is only a name. */
function setMember(object: { [key: string]: Json }, key: string, value: Json): void {
  Object.defineProperty(object, key, {
    value,
    enumerable: true,
    writable: true,
    configurable: true,
  });
}

function isObject(value: unknown): value is { [key: string]: Json } {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** RFC 7386 §2. */
export function mergePatch(target: Json, patch: Json): Json {
  if (!isObject(patch)) return structuredClone(patch);
  const result: { [key: string]: Json } = isObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else setMember(result, key, mergePatch(Object.hasOwn(result, key) ? result[key] : null, value));
  }
  return result;
}

/** The merge key of a list field, as the Kubernetes types declare it (`patchMergeKey`). */
function mergeKey(field: string, elements: Json[]): string | undefined {
  switch (field) {
    case "containers":
    case "initContainers":
    case "ephemeralContainers":
    case "env":
    case "volumes":
    case "imagePullSecrets":
      return "name";
    case "volumeMounts":
      return "mountPath";
    case "conditions":
      return "type";
    case "podIPs":
      return "ip";
    case "ports": {
      // Container ports merge by containerPort, service ports by port.
      const first = elements.find(isObject);
      return first && "containerPort" in first ? "containerPort" : "port";
    }
    default:
      return undefined;
  }
}

function strategicMergePatch(target: Json, patch: Json, field: string): Json {
  if (Array.isArray(patch)) return strategicList(target, patch, field);
  if (!isObject(patch)) return structuredClone(patch);
  if (patch.$patch === "replace") {
    const { $patch: _, ...rest } = patch;
    return structuredClone(rest);
  }
  if (patch.$patch === "delete") return null;
  const result: { [key: string]: Json } = isObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (key.startsWith("$setElementOrder/") || key === "$patch") continue;
    if (key.startsWith("$")) throw new PatchError(`unsupported patch directive ${key}`);
    if (value === null) delete result[key];
    else {
      const current = Object.hasOwn(result, key) ? result[key] : null;
      setMember(result, key, strategicMergePatch(current, value, key));
    }
  }
  return result;
}

function strategicList(target: Json, patch: Json[], field: string): Json {
  const key = mergeKey(field, patch);
  if (!key || !Array.isArray(target) || !patch.every(isObject)) return structuredClone(patch);
  if (patch.some((p) => isObject(p) && p.$patch === "replace")) {
    return patch.filter((p) => !(isObject(p) && p.$patch === "replace")).map((p) =>
      structuredClone(p)
    );
  }
  const result = target.map((t) => structuredClone(t));
  for (const element of patch as { [key: string]: Json }[]) {
    if (!(key in element)) throw new PatchError(`an element of ${field} has no merge key ${key}`);
    const index = result.findIndex((t) => isObject(t) && t[key] === element[key]);
    if (element.$patch === "delete") {
      if (index !== -1) result.splice(index, 1);
      continue;
    }
    if (index === -1) result.push(strategicMergePatch(null, element, ""));
    else result[index] = strategicMergePatch(result[index], element, "");
  }
  return result;
}

/** RFC 6901 §4: a pointer's reference tokens. */
function pointer(path: unknown): string[] {
  if (typeof path !== "string" || (path !== "" && !path.startsWith("/"))) {
    throw new PatchError(`"${String(path)}" is not a JSON Pointer`);
  }
  return path === ""
    ? []
    : path.slice(1).split("/").map((t) => t.replaceAll("~1", "/").replaceAll("~0", "~"));
}

/** RFC 6902 §4: the operations in order; any failure fails the whole patch (§5). */
export function jsonPatch(target: Json, operations: unknown): Json {
  if (!Array.isArray(operations)) throw new PatchError("a JSON Patch must be a list of operations");
  let document = structuredClone(target);
  for (const [i, raw] of operations.entries()) {
    if (!isObject(raw)) throw new PatchError(`operation ${i} is not an object`);
    const op = raw as { op?: Json; path?: Json; from?: Json; value?: Json };
    const path = pointer(op.path);
    const at = `operation ${i} (${String(op.op)} ${String(op.path)})`;
    switch (op.op) {
      case "add":
        if (!("value" in op)) throw new PatchError(`${at}: no value`);
        document = add(document, path, structuredClone(op.value!), at);
        break;
      case "remove":
        document = remove(document, path, at).document;
        break;
      case "replace":
        if (!("value" in op)) throw new PatchError(`${at}: no value`);
        document = add(remove(document, path, at).document, path, structuredClone(op.value!), at);
        break;
      case "move": {
        const taken = remove(document, pointer(op.from), at);
        document = add(taken.document, path, taken.value, at);
        break;
      }
      case "copy":
        document = add(document, path, structuredClone(get(document, pointer(op.from), at)), at);
        break;
      case "test":
        if (JSON.stringify(get(document, path, at)) !== JSON.stringify(op.value)) {
          throw new PatchError(`${at}: the test failed`);
        }
        break;
      default:
        throw new PatchError(`${at}: unknown operation`);
    }
  }
  return document;
}

function get(document: Json, path: string[], at: string): Json {
  let node = document;
  for (const token of path) {
    if (Array.isArray(node) && /^(0|[1-9]\d*)$/.test(token) && Number(token) < node.length) {
      node = node[Number(token)];
    } else if (isObject(node) && Object.hasOwn(node, token)) node = node[token];
    else throw new PatchError(`${at}: no value at the path`);
  }
  return node;
}

/** The container (parent) of `path` and the last token; the root has none. */
function parentOf(document: Json, path: string[], at: string): [Json, string] {
  if (path.length === 0) throw new PatchError(`${at}: the whole document cannot be changed here`);
  return [get(document, path.slice(0, -1), at), path[path.length - 1]];
}

function add(document: Json, path: string[], value: Json, at: string): Json {
  if (path.length === 0) return value;
  const [parent, token] = parentOf(document, path, at);
  if (Array.isArray(parent)) {
    const index = token === "-" ? parent.length : Number(token);
    if (!/^(0|[1-9]\d*|-)$/.test(token) || index > parent.length) {
      throw new PatchError(`${at}: index ${token} is out of range`);
    }
    parent.splice(index, 0, value);
  } else if (isObject(parent)) setMember(parent, token, value);
  else throw new PatchError(`${at}: the parent is not an object or a list`);
  return document;
}

function remove(document: Json, path: string[], at: string): { document: Json; value: Json } {
  const value = get(document, path, at);
  const [parent, token] = parentOf(document, path, at);
  if (Array.isArray(parent)) parent.splice(Number(token), 1);
  else delete (parent as { [key: string]: Json })[token];
  return { document, value };
}
