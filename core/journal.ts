/**
 * The journal of changes k8stun makes outside the TUN (docs/platform.md §6), one per running
 * k8stun (`journal-<pid>.json` in the runtime directory), so two instances never undo each
 * other's changes. The intent comes first: before a file is changed, its original bytes and the
 * hash of what k8stun is about to write are recorded and fsynced, so a crash at any point after
 * leaves a journal that knows the change. Undo restores a file only if it holds exactly what
 * k8stun wrote (never clobbering someone else's later edit; a file still as it was needs
 * nothing), writing in place so bind-mounted files (containers, lab namespaces) are restored
 * too. A run that crashed leaves its journal behind; `k8stun cleanup` or the next `k8stun run`
 * undoes the journals of every k8stun that no longer runs (never a running one's), and acts only
 * on the files k8stun's DNS modes change, whatever a journal names.
 */
import { createHash } from "node:crypto";
import type { Journal } from "../mod.ts";
import { processRuns, processStartTime } from "./live_process.ts";
import { logger } from "./log.ts";
import {
  ensureRuntimeDir,
  existingRuntimeDir,
  runFileName,
  runFiles,
  runtimeDir,
} from "./runtime_dir.ts";
import { parentDir, replaceFileSync } from "./safe_file.ts";

const log = logger("journal");

interface FileEntry {
  kind: "file";
  path: string;
  /** Original bytes (base64), or null when the file did not exist. */
  original: string | null;
  /** SHA-256 of the bytes k8stun is about to write, recorded before it writes them. */
  intended?: string;
  /** SHA-256 of the bytes written (journals of older versions, recorded after the write). */
  written?: string;
}

interface StepEntry {
  kind: "step";
  mode: string;
  step: Record<string, unknown>;
}

/**
 * A policy routing rule (`ip rule`): packets to `dst/dstPrefix` of IP protocol `ipProto` and
 * destination port `dport` are looked up in `table`, at preference `priority`. k8stun adds them
 * for tun_route's DNS diversion; they outlive the process, so each is journaled before it is added.
 */
export interface JournaledRule {
  dst: number;
  dstPrefix: number;
  /** 6 TCP, 17 UDP. */
  ipProto: number;
  dport: number;
  table: number;
  priority: number;
}

interface RuleEntry {
  kind: "rule";
  rule: JournaledRule;
}

type Entry = FileEntry | StepEntry | RuleEntry;

interface JournalFile {
  pid: number;
  /** The process's start time (core/live_process.ts): tells it from a later one with its pid. */
  startTime?: number;
  startedAt: string;
  entries: Entry[];
}

/**
 * How journaled system changes other than files are undone: injected, so the journal stays free
 * of the OS layer. `mayRemove` keeps `cleanup` to rules k8stun itself makes, whatever the journal
 * says.
 */
export interface RuleUndo {
  mayRemove(rule: JournaledRule): boolean;
  /** Removes the rule; one that is already gone is fine. */
  remove(rule: JournaledRule): void;
}

/** Whether `k8stun cleanup` may restore or remove a file a journal names. */
export type MayTouch = (path: string) => boolean;

/** Where process `pid` keeps its journal: `journal-<pid>.json` in the runtime directory. */
export function journalPath(
  env: (name: string) => string | undefined = Deno.env.get,
  pid: number = Deno.pid,
): string {
  return `${runtimeDir(env)}/${runFileName("journal", pid)}`;
}

/** SHA-256 hex of bytes (synchronous: a forced exit undoes the journal without awaiting). */
export function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** A journal backed by a JSON file. */
export class FileJournal implements Journal {
  #data: JournalFile;

  constructor(readonly path: string = journalPath(), readonly rules?: RuleUndo) {
    this.#data = {
      pid: Deno.pid,
      startTime: processStartTime(),
      startedAt: new Date().toISOString(),
      entries: [],
    };
  }

  /**
   * Records that `path` is about to be replaced with `contents`: its original bytes and the hash
   * of `contents`, on disk before this returns. Without `contents`, undo cannot tell k8stun's
   * write from someone else's and leaves the file alone.
   */
  async recordFile(path: string, contents?: Uint8Array): Promise<void> {
    const intended = contents ? sha256(contents) : undefined;
    const known = this.#data.entries.find((e): e is FileEntry =>
      e.kind === "file" && e.path === path
    );
    if (known) {
      known.intended = intended;
    } else {
      let original: string | null = null;
      try {
        original = toBase64(await Deno.readFile(path));
      } catch (error) {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      }
      this.#data.entries.push({ kind: "file", path, original, intended });
    }
    await this.#save();
  }

  /** Records that `rule` is about to be added: on disk before this returns. */
  recordRule(rule: JournaledRule): Promise<void> {
    this.#data.entries.push({ kind: "rule", rule: { ...rule } });
    return this.#save();
  }

  async recordStep(mode: string, step: Record<string, unknown>): Promise<void> {
    this.#data.entries.push({ kind: "step", mode, step });
    await this.#save();
  }

  /** Undoes this run's changes (clean exit) and removes the journal. */
  undo(): Promise<string[]> {
    return Promise.resolve(this.undoSync());
  }

  /**
   * {@link undo} without awaiting anything: a forced exit (a second Ctrl-C) runs it from the
   * signal handler right before the process ends, so no change outlives the process.
   */
  undoSync(): string[] {
    const messages = undoEntries(this.#data.entries, () => true, this.rules);
    try {
      Deno.removeSync(this.path);
    } catch {
      // never written, or removed already
    }
    this.#data.entries = [];
    return messages;
  }

  /** Writes the journal and fsyncs it (and its directory) before the change it records. */
  #save(): Promise<void> {
    try {
      ensureRuntimeDir(parentDir(this.path));
      const bytes = new TextEncoder().encode(JSON.stringify(this.#data, null, 1));
      replaceFileSync(this.path, bytes, { mode: 0o600, durable: true });
      return Promise.resolve();
    } catch (error) {
      return Promise.reject(error);
    }
  }
}

/** What undoing the journals of runs that are gone did. */
export interface JournalRepair {
  /** One line per change undone or left alone, for the user. */
  messages: string[];
  /** The pids of running k8stuns whose journals were left to them. */
  running: number[];
}

/**
 * Undoes the journals in the runtime directory `dir` whose k8stun no longer runs (crashed or
 * killed), newest run first; a running one's journal is left alone. A journal in a directory
 * others can write is refused; an entry naming a file `mayTouch` rejects is reported and
 * skipped.
 */
export async function repairJournals(
  mayTouch: MayTouch,
  rules?: RuleUndo,
  dir: string = runtimeDir(),
): Promise<JournalRepair> {
  const result: JournalRepair = { messages: [], running: [] };
  if (!existingRuntimeDir(dir)) return result;
  const dead: { path: string; data: JournalFile }[] = [];
  for (const file of runFiles(dir)) {
    if (file.kind !== "journal" || file.temporary) continue;
    const data = await readJournal(file.path);
    if (!data) continue;
    if (processRuns(data.pid, data.startTime)) result.running.push(data.pid);
    else dead.push({ path: file.path, data });
  }
  dead.sort((a, b) => String(b.data.startedAt).localeCompare(String(a.data.startedAt)));
  for (const { path, data } of dead) {
    result.messages.push(...undoEntries(data.entries, mayTouch, rules));
    await Deno.remove(path).catch(() => {});
  }
  return result;
}

/** A journal's contents; undefined when it is gone; throws when it cannot be trusted. */
async function readJournal(path: string): Promise<JournalFile | undefined> {
  let data: JournalFile;
  try {
    data = JSON.parse(await Deno.readTextFile(path));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw new Error(
      `cannot read the journal ${path}: ${(error as Error).message}; ` +
        "remove it after checking /etc/resolv.conf",
    );
  }
  if (
    typeof data?.pid !== "number" || !Array.isArray(data.entries) ||
    (data.startTime !== undefined && typeof data.startTime !== "number")
  ) {
    throw new Error(`the journal ${path} is damaged; remove it after checking /etc/resolv.conf`);
  }
  return data;
}

function undoEntries(entries: Entry[], mayTouch: MayTouch, rules?: RuleUndo): string[] {
  const messages: string[] = [];
  for (const entry of [...entries].reverse()) {
    if (entry?.kind === "rule") {
      messages.push(undoRule(entry, rules));
      continue;
    }
    if (entry?.kind !== "file") continue;
    if (!wellFormed(entry)) {
      messages.push("skipped a damaged journal entry");
      continue;
    }
    if (!mayTouch(entry.path)) {
      messages.push(
        `${entry.path}: refused — not a file k8stun changes (the journal was altered?); left alone`,
      );
      log.warn("the journal names {path}, which k8stun never changes; left alone", {
        path: entry.path,
      });
      continue;
    }
    try {
      messages.push(undoFile(entry));
    } catch (error) {
      messages.push(`${entry.path}: could not be restored: ${(error as Error).message}`);
    }
  }
  return messages;
}

/** Undoes one file change; returns what it did. */
function undoFile(entry: FileEntry): string {
  let current: Uint8Array | undefined;
  try {
    current = Deno.readFileSync(entry.path);
  } catch {
    current = undefined;
  }
  const original = entry.original === null ? undefined : fromBase64(entry.original);
  if (sameBytes(current, original)) return `${entry.path}: never changed, left as it is`;
  const ours = entry.intended ?? entry.written;
  // Writing in place opens the file with O_TRUNC before writing (open(2)): a k8stun killed
  // between the two, writing its bytes or restoring the original, leaves it empty.
  const cutShort = current?.length === 0 && ours !== undefined;
  if (!cutShort && (ours === undefined || !current || sha256(current) !== ours)) {
    log.warn("{path} was changed by someone else since k8stun wrote it; not restoring it", {
      path: entry.path,
    });
    return `${entry.path}: changed by someone else since k8stun wrote it, left alone`;
  }
  if (original === undefined) {
    Deno.removeSync(entry.path);
    return `${entry.path}: removed (k8stun had created it)`;
  }
  // In place, not rename: /etc/resolv.conf is often a bind mount.
  Deno.writeFileSync(entry.path, original);
  return `${entry.path}: restored`;
}

/** Removes one journaled rule; returns what it did. */
function undoRule(entry: RuleEntry, rules?: RuleUndo): string {
  const rule = entry.rule;
  const fields = ["dst", "dstPrefix", "ipProto", "dport", "table", "priority"] as const;
  if (!rule || !fields.every((f) => Number.isInteger(rule[f]))) {
    return "skipped a damaged journal entry";
  }
  const what = `the DNS rule to ${rule.dst >>> 24}.${(rule.dst >>> 16) & 255}.${
    (rule.dst >>> 8) & 255
  }.${rule.dst & 255} (${rule.ipProto === 6 ? "TCP" : "UDP"} port ${rule.dport})`;
  if (!rules) return `${what}: not removed here (no rule access)`;
  if (!rules.mayRemove(rule)) {
    log.warn("the journal names a rule k8stun never makes; left alone");
    return `${what}: refused — not a rule k8stun makes (the journal was altered?); left alone`;
  }
  try {
    rules.remove(rule);
    return `${what}: removed`;
  } catch (error) {
    return `${what}: could not be removed: ${(error as Error).message}`;
  }
}

function wellFormed(entry: FileEntry): boolean {
  return typeof entry.path === "string" && entry.path.startsWith("/") &&
    (entry.original === null || typeof entry.original === "string") &&
    (entry.intended === undefined || typeof entry.intended === "string") &&
    (entry.written === undefined || typeof entry.written === "string");
}

function sameBytes(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
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
