/**
 * Where a running k8stun advertises its HTTP API, so `k8stun status` finds it without flags:
 * `api.json` in the runtime directory (core/runtime_dir.ts: `/run/k8stun` for root,
 * `$XDG_RUNTIME_DIR/k8stun` or `~/.local/state/k8stun` otherwise). It holds the token, so it is
 * written with mode 0600 into a directory only k8stun's user can write, never through a link.
 */
import { ensureRuntimeDir, existingRuntimeDir, runtimeDir } from "../runtime_dir.ts";
import { parentDir, replaceFileSync } from "../safe_file.ts";

/** What the file holds. */
export interface InstanceInfo {
  url: string;
  token?: string;
  pid: number;
  startedAt: string;
}

/** Candidate locations, most specific first. */
export function instanceFilePaths(
  env: (name: string) => string | undefined = Deno.env.get,
): string[] {
  const override = env("K8STUN_RUNTIME_DIR");
  if (override) return [`${override}/api.json`];
  const paths: string[] = [];
  const runtime = env("XDG_RUNTIME_DIR");
  if (runtime) paths.push(`${runtime}/k8stun/api.json`);
  const home = env("HOME");
  if (home) paths.push(`${home}/.local/state/k8stun/api.json`);
  paths.push("/run/k8stun/api.json");
  return paths;
}

/** The path this process writes to. */
export function ownInstanceFilePath(): string {
  return `${runtimeDir()}/api.json`;
}

/** Writes the instance file; returns its path. */
export function writeInstanceFile(info: InstanceInfo): Promise<string> {
  const path = ownInstanceFilePath();
  ensureRuntimeDir(parentDir(path));
  const bytes = new TextEncoder().encode(JSON.stringify(info, null, 2) + "\n");
  replaceFileSync(path, bytes, { mode: 0o600 });
  return Promise.resolve(path);
}

/**
 * Removes this process's instance file when the k8stun that wrote it is gone (it would keep a
 * dead run's token lying around); returns what it did, or undefined when there was nothing.
 */
export async function removeStaleInstanceFile(
  path: string = ownInstanceFilePath(),
): Promise<string | undefined> {
  if (!existingRuntimeDir(parentDir(path))) return undefined;
  let pid: number | undefined;
  try {
    pid = (JSON.parse(await Deno.readTextFile(path)) as InstanceInfo).pid;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    // unreadable or damaged: nobody can use it, remove it
  }
  if (typeof pid === "number" && pid !== Deno.pid && processAlive(pid)) return undefined;
  await Deno.remove(path);
  return `${path}: removed (the API token of a k8stun that is no longer running)`;
}

/** Removes the instance file if it is still this process's. */
export async function removeInstanceFile(path: string): Promise<void> {
  try {
    const info = JSON.parse(await Deno.readTextFile(path)) as InstanceInfo;
    if (info.pid === Deno.pid) await Deno.remove(path);
  } catch {
    // gone already, or not ours
  }
}

/** Finds a live instance: the first file whose pid still runs. */
export async function findInstance(): Promise<InstanceInfo | undefined> {
  for (const path of instanceFilePaths()) {
    try {
      const info = JSON.parse(await Deno.readTextFile(path)) as InstanceInfo;
      if (processAlive(info.pid)) return info;
    } catch {
      // missing or unreadable: try the next location
    }
  }
  return undefined;
}

function processAlive(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return Deno.build.os !== "linux";
  }
}
