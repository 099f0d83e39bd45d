/**
 * The kubeconfig file format (kubectl's `clientcmd` v1 `Config`): named clusters, users and
 * contexts, and the current context, read from YAML and merged over several files as kubectl
 * merges `KUBECONFIG`: the first file that names an entry wins it, and the first file that sets
 * `current-context` chooses it. File paths inside an entry (certificates, keys, token files, a
 * credential plugin given as a relative path) are relative to the file that holds the entry.
 *
 * Only what k8stun uses is kept, with the file's own key names; anything else is ignored. A
 * malformed file fails with one line naming the file and the entry.
 */
import { parse as parseYaml } from "yaml";
import type { ExecConfig } from "./exec_credential.ts";

/** A `clusters[].cluster`. */
export interface ClusterEntry {
  server: string;
  "certificate-authority"?: string;
  "certificate-authority-data"?: string;
  "insecure-skip-tls-verify"?: boolean;
  "tls-server-name"?: string;
  "proxy-url"?: string;
  /** `extensions`, of which a credential plugin may be given its own (`client.authentication.k8s.io/exec`). */
  extensions?: { name: string; extension: unknown }[];
}

/** A `users[].user`. */
export interface UserEntry {
  "client-certificate"?: string;
  "client-certificate-data"?: string;
  "client-key"?: string;
  "client-key-data"?: string;
  token?: string;
  tokenFile?: string;
  username?: string;
  password?: string;
  /** Impersonation (the `Impersonate-*` headers). */
  as?: string;
  "as-uid"?: string;
  "as-groups"?: string[];
  "as-user-extra"?: Record<string, string[]>;
  "auth-provider"?: { name: string; config?: Record<string, unknown> };
  exec?: ExecConfig;
}

/** A `contexts[].context`. */
export interface ContextEntry {
  cluster: string;
  user?: string;
  namespace?: string;
}

/** One or more kubeconfig files, merged. */
export interface KubeconfigDocument {
  clusters: Map<string, ClusterEntry>;
  users: Map<string, UserEntry>;
  contexts: Map<string, ContextEntry>;
  currentContext?: string;
}

/** A kubeconfig that cannot be used; the message names the file. */
export class KubeconfigFormatError extends Error {}

/** An empty document (no cluster at all: what a dialer without a kubeconfig is built over). */
export function emptyKubeconfig(): KubeconfigDocument {
  return { clusters: new Map(), users: new Map(), contexts: new Map() };
}

/**
 * Reads kubeconfig `text`; `file` names it in errors and anchors its relative paths (absent: the
 * paths stay as written).
 */
export function parseKubeconfig(text: string, file?: string): KubeconfigDocument {
  const where = file ?? "kubeconfig";
  let data: unknown;
  try {
    data = parseYaml(text);
  } catch (error) {
    throw new KubeconfigFormatError(`${where}: not YAML (${firstLine(error)})`);
  }
  data ??= {};
  if (!isRecord(data)) throw new KubeconfigFormatError(`${where}: not a kubeconfig mapping`);
  // The file's directory: "." for a bare file name (the working directory), "" for "/".
  const slash = file?.lastIndexOf("/") ?? -1;
  const dir = file === undefined ? undefined : slash < 0 ? "." : file.slice(0, slash);
  /** The path `field` of entry `what` holds, anchored at the file's directory when relative. */
  const resolve = (path: unknown, what: string, field: string): string | undefined => {
    if (path === undefined) return undefined;
    if (typeof path !== "string") {
      throw new KubeconfigFormatError(`${where}: ${what} ${field} is not a string`);
    }
    return path && dir !== undefined && !path.startsWith("/") ? `${dir}/${path}` : path;
  };
  const document = emptyKubeconfig();
  for (const { name, value } of namedEntries(data, "clusters", "cluster", where)) {
    const server = value.server;
    if (typeof server !== "string" || server === "") {
      throw new KubeconfigFormatError(`${where}: cluster "${name}" has no server`);
    }
    const what = `cluster "${name}"`;
    const cluster = pick(value, CLUSTER_FIELDS) as unknown as ClusterEntry;
    cluster["certificate-authority"] = resolve(
      cluster["certificate-authority"],
      what,
      "certificate-authority",
    );
    const insecure = cluster["insecure-skip-tls-verify"] as unknown;
    if (insecure !== undefined) {
      cluster["insecure-skip-tls-verify"] = yamlBoolean(
        insecure,
        where,
        what,
        "insecure-skip-tls-verify",
      );
    }
    document.clusters.set(name, withoutUndefined(cluster));
  }
  for (const { name, value } of namedEntries(data, "users", "user", where)) {
    const what = `user "${name}"`;
    const user = pick(value, USER_FIELDS) as unknown as UserEntry;
    user["client-certificate"] = resolve(user["client-certificate"], what, "client-certificate");
    user["client-key"] = resolve(user["client-key"], what, "client-key");
    user.tokenFile = resolve(user.tokenFile, what, "tokenFile");
    // A plugin named with a path is relative to the file; a bare name is looked up in PATH.
    const command: unknown = isRecord(user.exec) ? user.exec.command : undefined;
    if (command != null && typeof command !== "string") {
      throw new KubeconfigFormatError(`${where}: ${what} exec.command is not a string`);
    }
    if (typeof command === "string" && command.includes("/")) {
      user.exec = { ...user.exec, command: resolve(command, what, "exec.command") };
    }
    document.users.set(name, withoutUndefined(user));
  }
  for (const { name, value } of namedEntries(data, "contexts", "context", where)) {
    if (typeof value.cluster !== "string") {
      throw new KubeconfigFormatError(`${where}: context "${name}" names no cluster`);
    }
    document.contexts.set(name, pick(value, CONTEXT_FIELDS) as unknown as ContextEntry);
  }
  const current = data["current-context"];
  if (typeof current === "string" && current !== "") document.currentContext = current;
  return document;
}

/** Merges documents as kubectl merges `KUBECONFIG`: the first to name an entry wins it. */
export function mergeKubeconfigs(documents: KubeconfigDocument[]): KubeconfigDocument {
  const merged = emptyKubeconfig();
  for (const document of documents) {
    for (const key of ["clusters", "users", "contexts"] as const) {
      const into = merged[key] as Map<string, unknown>;
      for (const [name, entry] of document[key]) if (!into.has(name)) into.set(name, entry);
    }
    merged.currentContext ??= document.currentContext;
  }
  return merged;
}

const CLUSTER_FIELDS = [
  "server",
  "certificate-authority",
  "certificate-authority-data",
  "insecure-skip-tls-verify",
  "tls-server-name",
  "proxy-url",
  "extensions",
];
const USER_FIELDS = [
  "client-certificate",
  "client-certificate-data",
  "client-key",
  "client-key-data",
  "token",
  "tokenFile",
  "username",
  "password",
  "as",
  "as-uid",
  "as-groups",
  "as-user-extra",
  "auth-provider",
  "exec",
];
const CONTEXT_FIELDS = ["cluster", "user", "namespace"];

/** The `{name, <kind>: {...}}` entries of a list, checked. */
function namedEntries(
  data: Record<string, unknown>,
  list: string,
  kind: string,
  where: string,
): { name: string; value: Record<string, unknown> }[] {
  const entries = data[list] ?? [];
  if (!Array.isArray(entries)) throw new KubeconfigFormatError(`${where}: ${list} is not a list`);
  const seen = new Set<string>();
  return entries.map((entry, i) => {
    const name = isRecord(entry) ? entry.name : undefined;
    if (typeof name !== "string" || name === "") {
      throw new KubeconfigFormatError(`${where}: ${list}[${i}] has no name`);
    }
    // kubectl refuses a file naming an entry twice rather than picking one.
    if (seen.has(name)) throw new KubeconfigFormatError(`${where}: ${list} has "${name}" twice`);
    seen.add(name);
    const value = (entry as Record<string, unknown>)[kind] ?? {};
    if (!isRecord(value)) {
      throw new KubeconfigFormatError(`${where}: ${kind} "${name}" is not a mapping`);
    }
    return { name, value };
  });
}

/**
 * A boolean as kubectl reads YAML (YAML 1.1, where `yes`, `on`, `no`, `off`... are booleans too;
 * this parser reads YAML 1.2, which leaves them strings). Anything else is refused: a string such
 * as "no" must not count as true.
 */
function yamlBoolean(value: unknown, where: string, what: string, field: string): boolean {
  if (typeof value === "boolean") return value;
  if (typeof value === "string") {
    if (/^(?:y|Y|yes|Yes|YES|on|On|ON|true|True|TRUE)$/.test(value)) return true;
    if (/^(?:n|N|no|No|NO|off|Off|OFF|false|False|FALSE)$/.test(value)) return false;
  }
  throw new KubeconfigFormatError(`${where}: ${what} ${field} is not true or false`);
}

function pick(value: Record<string, unknown>, fields: string[]): Record<string, unknown> {
  const picked: Record<string, unknown> = {};
  for (const field of fields) if (value[field] != null) picked[field] = value[field];
  return picked;
}

function withoutUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split("\n")[0];
}
