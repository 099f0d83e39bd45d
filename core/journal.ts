/**
 * The journal of changes k8stun makes outside the TUN (platform-ffi.md §8.2): before a file is
 * changed, its original bytes are recorded; after, the hash of what k8stun wrote. `undo` restores
 * a file only if it still holds exactly what k8stun wrote (never clobbering someone else's later
 * edit), writing in place so bind-mounted files (containers, lab namespaces) are restored too.
 * A run that crashed leaves the journal behind; `k8stun cleanup` or the next `k8stun run` undoes it.
 */
import type { Journal } from "../mod.ts";
import { logger } from "./log.ts";

const log = logger("journal");

interface FileEntry {
  kind: "file";
  path: string;
  /** Original bytes (base64), or null when the file did not exist. */
  original: string | null;
  /** SHA-256 of the bytes k8stun wrote, once written. */
  written?: string;
}

interface StepEntry {
  kind: "step";
  mode: string;
  step: Record<string, unknown>;
}

interface JournalFile {
  pid: number;
  startedAt: string;
  entries: (FileEntry | StepEntry)[];
}

/**
 * Where the journal lives: `$K8STUN_RUNTIME_DIR/journal.json` when set, else
 * `/run/k8stun/journal.json` as root, else the user's runtime dir.
 */
export function journalPath(env: (name: string) => string | undefined = Deno.env.get): string {
  const override = env("K8STUN_RUNTIME_DIR");
  if (override) return `${override}/journal.json`;
  if (Deno.uid() === 0) return "/run/k8stun/journal.json";
  const runtime = env("XDG_RUNTIME_DIR") ?? `${env("HOME") ?? "/tmp"}/.local/state`;
  return `${runtime}/k8stun/journal.json`;
}

/** SHA-256 hex of bytes. */
export async function sha256(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** A journal backed by a JSON file. */
export class FileJournal implements Journal {
  #data: JournalFile;

  constructor(readonly path: string = journalPath()) {
    this.#data = { pid: Deno.pid, startedAt: new Date().toISOString(), entries: [] };
  }

  async recordFile(path: string): Promise<void> {
    if (this.#data.entries.some((e) => e.kind === "file" && e.path === path)) return;
    let original: string | null = null;
    try {
      original = toBase64(await Deno.readFile(path));
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    this.#data.entries.push({ kind: "file", path, original });
    await this.#save();
  }

  /** Records what was written to a recorded file (so undo can tell if someone changed it). */
  async noteWritten(path: string, bytes: Uint8Array): Promise<void> {
    const entry = this.#data.entries.find((e): e is FileEntry =>
      e.kind === "file" && e.path === path
    );
    if (!entry) throw new Error(`${path} was written without being journaled first`);
    entry.written = await sha256(bytes);
    await this.#save();
  }

  async recordStep(mode: string, step: Record<string, unknown>): Promise<void> {
    this.#data.entries.push({ kind: "step", mode, step });
    await this.#save();
  }

  /** Undoes this run's changes (clean exit) and removes the journal. */
  async undo(): Promise<string[]> {
    const messages = await undoEntries(this.#data.entries);
    await Deno.remove(this.path).catch(() => {});
    this.#data.entries = [];
    return messages;
  }

  async #save(): Promise<void> {
    await Deno.mkdir(this.path.slice(0, this.path.lastIndexOf("/")), { recursive: true });
    const tmp = `${this.path}.tmp`;
    await Deno.writeTextFile(tmp, JSON.stringify(this.#data, null, 1), { mode: 0o600 });
    await Deno.rename(tmp, this.path);
  }
}

/**
 * Undoes a journal left by another run (crashed or killed). Returns what it did, one line each;
 * an empty list when there was nothing to do. A journal whose process still runs is left alone.
 */
export async function repairJournal(path: string = journalPath()): Promise<string[]> {
  let data: JournalFile;
  try {
    data = JSON.parse(await Deno.readTextFile(path));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw new Error(`cannot read the journal ${path}: ${(error as Error).message}`);
  }
  if (data.pid !== Deno.pid && processRuns(data.pid)) {
    throw new Error(`k8stun (pid ${data.pid}) is still running; stop it first`);
  }
  const messages = await undoEntries(data.entries);
  await Deno.remove(path).catch(() => {});
  return messages;
}

async function undoEntries(entries: (FileEntry | StepEntry)[]): Promise<string[]> {
  const messages: string[] = [];
  for (const entry of [...entries].reverse()) {
    if (entry.kind !== "file") continue;
    let current: Uint8Array | undefined;
    try {
      current = await Deno.readFile(entry.path);
    } catch {
      current = undefined;
    }
    if (entry.written === undefined) {
      messages.push(`${entry.path}: never changed, left as it is`);
      continue;
    }
    if (!current || await sha256(current) !== entry.written) {
      messages.push(`${entry.path}: changed by someone else since k8stun wrote it, left alone`);
      log.warn("{path} was changed by someone else since k8stun wrote it; not restoring it", {
        path: entry.path,
      });
      continue;
    }
    if (entry.original === null) {
      await Deno.remove(entry.path);
      messages.push(`${entry.path}: removed (k8stun had created it)`);
    } else {
      // In place, not rename: /etc/resolv.conf is often a bind mount.
      await Deno.writeFile(entry.path, fromBase64(entry.original));
      messages.push(`${entry.path}: restored`);
    }
  }
  return messages;
}

function processRuns(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

function toBase64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

function fromBase64(text: string): Uint8Array {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}
