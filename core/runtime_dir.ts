/**
 * k8stun's runtime directory: each running k8stun's journal (`journal-<pid>.json`, what to undo
 * after a crash) and API record (`api-<pid>.json`, with the API token), so several instances
 * (two clusters) never share or overwrite one. `K8STUN_RUNTIME_DIR` when set, else as root
 * `/run/k8stun` (`/var/run/k8stun` on macOS), else `$XDG_RUNTIME_DIR/k8stun` or
 * `~/.local/state/k8stun`. Whoever can write there can make root rewrite files at `k8stun cleanup`
 * or read the token, so it must belong to the user k8stun runs as and be writable by no one else
 * (core/safe_file.ts); k8stun refuses it otherwise.
 */
import { processRuns } from "./live_process.ts";
import { ensurePrivateDir, UnsafePathError, untrustedDirReason } from "./safe_file.ts";

/** The runtime directory for this process. */
export function runtimeDir(
  env: (name: string) => string | undefined = Deno.env.get,
  uid: number = Deno.uid() ?? 0,
  os: typeof Deno.build.os = Deno.build.os,
): string {
  const override = env("K8STUN_RUNTIME_DIR");
  if (override) return override;
  // macOS has no /run, and its root volume is read-only: /var/run is its place (emptied at boot).
  if (uid === 0) return os === "darwin" ? "/var/run/k8stun" : "/run/k8stun";
  const runtime = env("XDG_RUNTIME_DIR") || `${env("HOME") || "/tmp"}/.local/state`;
  return `${runtime}/k8stun`;
}

/** Creates the runtime directory if missing; throws {@link UnsafePathError} if others can write it. */
export function ensureRuntimeDir(dir: string, uid: number = Deno.uid() ?? 0): void {
  ensurePrivateDir(dir, "runtime directory", uid);
}

/**
 * Checks an existing runtime directory before trusting what is in it (a journal to replay);
 * false when there is none.
 */
export function existingRuntimeDir(dir: string, uid: number = Deno.uid() ?? 0): boolean {
  try {
    Deno.statSync(dir);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
  const reason = untrustedDirReason(dir, uid);
  if (reason) {
    throw new UnsafePathError(
      `refusing runtime directory ${dir}: ${reason}. k8stun does not act on files others can ` +
        "change; make it writable by its owner only (chmod go-w) or remove it",
    );
  }
  return true;
}

/** A file in the runtime directory that belongs to one k8stun process. */
export interface RunFile {
  path: string;
  /** What it is: `journal` or `api`. */
  kind: string;
  /**
   * The pid in its name; undefined for the unnumbered `journal.json` and `api.json` of older
   * versions (their pid is inside).
   */
  pid?: number;
  /** A temporary file of an interrupted replace (core/safe_file.ts), never a complete one. */
  temporary: boolean;
}

/** `<kind>-<pid>.json`, or the old unnumbered `<kind>.json`; `.<that>.<8 hex>.tmp` while written. */
const RUN_FILE = /^(\.)?([a-z]+)(?:-([1-9][0-9]{0,9}))?\.json(\.[0-9a-f]{8}\.tmp)?$/;

/** The name of `kind`'s file for process `pid`. */
export function runFileName(kind: string, pid: number = Deno.pid): string {
  return `${kind}-${pid}.json`;
}

/** The files in `dir` that belong to k8stun processes (none when it does not exist). */
export function runFiles(dir: string): RunFile[] {
  const files: RunFile[] = [];
  try {
    for (const entry of Deno.readDirSync(dir)) {
      const match = RUN_FILE.exec(entry.name);
      if (!entry.isFile || !match || (match[1] === undefined) !== (match[4] === undefined)) {
        continue;
      }
      files.push({
        path: `${dir}/${entry.name}`,
        kind: match[2],
        pid: match[3] === undefined ? undefined : Number(match[3]),
        temporary: match[4] !== undefined,
      });
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return files.sort((a, b) => a.path.localeCompare(b.path));
}

/** `demo-<pid>`: the directory `k8stun demo` keeps its simulated cluster's kubeconfig in. */
const DEMO_DIR = /^demo-([1-9][0-9]{0,9})$/;

/** The name of the demo directory of process `pid`. */
export function demoDirName(pid: number = Deno.pid): string {
  return `demo-${pid}`;
}

/**
 * Removes the temporary files that processes which no longer run left in `dir` when they were
 * killed in the middle of replacing one of their files, and the directories of demos that were
 * killed; returns one line per file removed.
 */
export function removeDeadTemporaries(dir: string): string[] {
  const messages: string[] = [];
  for (const entry of readDirOrNothing(dir)) {
    const match = DEMO_DIR.exec(entry.name);
    if (!entry.isDirectory || !match || processRuns(Number(match[1]))) continue;
    Deno.removeSync(`${dir}/${entry.name}`, { recursive: true });
    messages.push(`${dir}/${entry.name}: removed (the directory of a k8stun demo that was killed)`);
  }
  for (const file of runFiles(dir)) {
    if (!file.temporary || file.pid === undefined || processRuns(file.pid)) continue;
    try {
      Deno.removeSync(file.path);
      messages.push(`${file.path}: removed (a half-written file of a k8stun that was killed)`);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }
  return messages;
}

function readDirOrNothing(dir: string): Deno.DirEntry[] {
  try {
    return [...Deno.readDirSync(dir)];
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
}
