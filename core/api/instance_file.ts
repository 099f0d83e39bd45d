/**
 * Where each running k8stun advertises its HTTP API, so `k8stun status` finds every instance
 * without flags: one record per process, `api-<pid>.json` in the runtime directory
 * (core/runtime_dir.ts: `/run/k8stun` for root, `$XDG_RUNTIME_DIR/k8stun` or
 * `~/.local/state/k8stun` otherwise), so a second instance (another cluster) neither overwrites
 * nor deletes the first one's. A record holds the token, so it is written with mode 0600 into
 * a directory only k8stun's user can write, never through a link. Records of processes that no
 * longer run are ignored, and removed by `k8stun cleanup` and the next start.
 */
import { processRuns, processStartTime } from "../live_process.ts";
import {
  ensureRuntimeDir,
  existingRuntimeDir,
  runFileName,
  runFiles,
  runtimeDir,
} from "../runtime_dir.ts";
import { parentDir, replaceFileSync } from "../safe_file.ts";

/** What a record holds. */
export interface InstanceInfo {
  url: string;
  token?: string;
  pid: number;
  /** The process's start time (core/live_process.ts): tells it from a later one with its pid. */
  startTime?: number;
  startedAt: string;
  /** The TUN device, the VIP range and the Kubernetes context, for `k8stun status`. */
  tun?: string;
  vipRange?: string;
  context?: string;
}

/** The directories a record may be in, most specific first (also those of other users). */
export function instanceDirs(env: (name: string) => string | undefined = Deno.env.get): string[] {
  const override = env("K8STUN_RUNTIME_DIR");
  if (override) return [override];
  const dirs: string[] = [];
  const runtime = env("XDG_RUNTIME_DIR");
  if (runtime) dirs.push(`${runtime}/k8stun`);
  const home = env("HOME");
  if (home) dirs.push(`${home}/.local/state/k8stun`);
  dirs.push("/run/k8stun");
  return dirs;
}

/** The path this process writes its record to. */
export function ownInstanceFilePath(): string {
  return `${runtimeDir()}/${runFileName("api")}`;
}

/** Writes this process's record (pid and start time filled in); returns its path. */
export function writeInstanceFile(
  info: Omit<InstanceInfo, "pid" | "startTime">,
): Promise<string> {
  const path = ownInstanceFilePath();
  ensureRuntimeDir(parentDir(path));
  const record: InstanceInfo = { ...info, pid: Deno.pid, startTime: processStartTime() };
  const bytes = new TextEncoder().encode(JSON.stringify(record, null, 2) + "\n");
  replaceFileSync(path, bytes, { mode: 0o600 });
  return Promise.resolve(path);
}

/**
 * Removes the records in `dir` whose k8stun no longer runs (they would keep a dead run's token
 * lying around), and damaged ones; returns one line per record removed.
 */
export async function removeStaleInstanceFiles(dir: string = runtimeDir()): Promise<string[]> {
  if (!existingRuntimeDir(dir)) return [];
  const messages: string[] = [];
  for (const file of runFiles(dir)) {
    if (file.kind !== "api" || file.temporary) continue;
    const info = await readRecord(file.path);
    if (info === null) continue; // removed meanwhile
    if (info && processRuns(info.pid, info.startTime)) continue;
    await Deno.remove(file.path).catch(() => {});
    messages.push(`${file.path}: removed (the API token of a k8stun that is no longer running)`);
  }
  return messages;
}

/** Removes the record if it is still this process's. */
export async function removeInstanceFile(path: string): Promise<void> {
  const info = await readRecord(path);
  if (info?.pid === Deno.pid) await Deno.remove(path).catch(() => {});
}

/**
 * The running instances with an HTTP API, oldest first: every record in the candidate
 * directories whose process still runs (unreadable directories and records are skipped).
 */
export async function findInstances(
  env: (name: string) => string | undefined = Deno.env.get,
): Promise<InstanceInfo[]> {
  const found = new Map<number, InstanceInfo>();
  for (const dir of instanceDirs(env)) {
    let files;
    try {
      files = runFiles(dir);
    } catch {
      continue; // another user's directory
    }
    for (const file of files) {
      if (file.kind !== "api" || file.temporary) continue;
      const info = await readRecord(file.path);
      if (info && !found.has(info.pid) && processRuns(info.pid, info.startTime)) {
        found.set(info.pid, info);
      }
    }
  }
  return [...found.values()].sort((a, b) => a.startedAt.localeCompare(b.startedAt));
}

/** A record; null when there is none, undefined when it cannot be read or is damaged. */
async function readRecord(path: string): Promise<InstanceInfo | null | undefined> {
  try {
    const info = JSON.parse(await Deno.readTextFile(path)) as InstanceInfo;
    const wellFormed = typeof info?.url === "string" && Number.isSafeInteger(info.pid) &&
      typeof info.startedAt === "string" &&
      (info.startTime === undefined || typeof info.startTime === "number");
    return wellFormed ? info : undefined;
  } catch (error) {
    return error instanceof Deno.errors.NotFound ? null : undefined;
  }
}
