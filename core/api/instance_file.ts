/**
 * Where a running k8stun advertises its HTTP API, so `k8stun status` finds it without flags:
 * `/run/k8stun/api.json` for root, `$XDG_RUNTIME_DIR/k8stun/api.json` (or
 * `~/.local/state/k8stun/api.json`) otherwise. Written with mode 0600 because it holds the token.
 */

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
  if (Deno.env.get("K8STUN_RUNTIME_DIR")) return instanceFilePaths()[0];
  return Deno.uid() === 0 ? "/run/k8stun/api.json" : instanceFilePaths()[0];
}

/** Writes the instance file; returns its path. */
export async function writeInstanceFile(info: InstanceInfo): Promise<string> {
  const path = ownInstanceFilePath();
  await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  await Deno.writeTextFile(path, JSON.stringify(info, null, 2) + "\n", { mode: 0o600 });
  await Deno.chmod(path, 0o600);
  return path;
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
