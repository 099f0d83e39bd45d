/**
 * Files that k8stun, running as root, writes where someone else may have a hand in the path:
 * the invoking user's state directory (under sudo) and the runtime directory. Root following a
 * symbolic link the user planted would write wherever the user points it (CWE-59), so:
 *
 * - a file is replaced by writing a temporary file created with O_CREAT|O_EXCL (which never
 *   follows a link, open(2)) in the same directory, then rename(2), which replaces a link
 *   rather than following it; an existing link or non-regular file in its place is refused;
 * - in the user's directories, the operations run with the user's filesystem identity where the
 *   OS allows it ({@link WithOwner}, ffi/linux/fs_identity.ts): new files and directories are the
 *   user's, and a link can only lead where the user could write anyway; elsewhere directories
 *   are created one at a time and handed to their owner (mkdir, then chown);
 * - an existing component that is a link, or a link where a file is to be replaced, is refused;
 * - a directory that holds root's private files (journal, API token) must be owned by root and
 *   writable by no one else, and so must every directory above it unless it is sticky (like
 *   /tmp: others cannot rename what is not theirs there, unlink(2)).
 */

/** Who a file or directory is created for. */
export interface FileOwner {
  uid: number;
  gid: number;
}

/**
 * Runs synchronous file operations as `owner` (the kernel checks access as, and new entries
 * belong to, the owner). Only synchronous calls inside `operations` are covered.
 */
export type WithOwner = <T>(owner: FileOwner, operations: () => T) => T;

/** A path k8stun refuses to use, with the reason; the message says what to do. */
export class UnsafePathError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UnsafePathError";
  }
}

/** The process's own uid and gid (who owns what it creates without a chown). */
export function processOwner(): FileOwner {
  return { uid: Deno.uid() ?? 0, gid: Deno.gid() ?? 0 };
}

/** The directory part of a path (`/` for a file at the root). */
export function parentDir(path: string): string {
  const at = path.lastIndexOf("/");
  return at <= 0 ? "/" : path.slice(0, at);
}

/**
 * Why `dir` is not a safe home for files only `uid` may change (its journal, its API token), or
 * undefined when it is: `dir` owned by `uid`, and neither it nor any directory above it writable
 * by others (a sticky directory above it is fine). Links on the way are resolved; the directory
 * they sit in is checked too.
 */
export function untrustedDirReason(path: string, uid: number): string | undefined {
  const dir = path.startsWith("/") ? path : `${Deno.cwd()}/${path}`;
  let stat: Deno.FileInfo;
  try {
    stat = Deno.statSync(dir);
  } catch (error) {
    return `${dir} cannot be used: ${(error as Error).message}`;
  }
  if (!stat.isDirectory) return `${dir} is not a directory`;
  if (stat.uid !== uid) return `${dir} is owned by uid ${stat.uid}, not ${uid}`;
  if ((stat.mode ?? 0) & 0o022) {
    return `${dir} is writable by group or others (mode ${modeText(stat.mode)})`;
  }
  for (const above of [...ancestors(dir), ...ancestors(Deno.realPathSync(dir))]) {
    const info = Deno.statSync(above);
    const mode = info.mode ?? 0;
    if (info.uid !== 0 && info.uid !== uid) {
      return `${above}, above ${dir}, is owned by uid ${info.uid}`;
    }
    if ((mode & 0o022) && !(mode & 0o1000)) {
      return `${above}, above ${dir}, is writable by group or others (mode ${modeText(mode)})`;
    }
  }
  return undefined;
}

/**
 * Creates `dir` (mode 0700, with the directories above it) unless it exists, then checks it
 * with {@link untrustedDirReason}; throws {@link UnsafePathError} naming `what` and the fix.
 */
export function ensurePrivateDir(dir: string, what: string, uid = processOwner().uid): void {
  try {
    Deno.mkdirSync(dir, { mode: 0o700, recursive: true });
  } catch (error) {
    if (!(error instanceof Deno.errors.AlreadyExists)) {
      throw new UnsafePathError(`cannot create ${what} ${dir}: ${(error as Error).message}`);
    }
  }
  const reason = untrustedDirReason(dir, uid);
  if (reason) {
    throw new UnsafePathError(
      `refusing ${what} ${dir}: ${reason}. It holds files only ${
        uid === 0 ? "root" : `uid ${uid}`
      } may change; use a directory owned by ${
        uid === 0 ? "root" : "you"
      } that no one else can write (chmod go-w), or remove it so k8stun creates it`,
    );
  }
}

/** How files are created for an owner other than the process. */
export interface OwnerOptions {
  /** Who owns what is created (default: the process). */
  owner?: FileOwner;
  /** Switches to the owner's filesystem identity (Linux, as root); without it: chown. */
  withOwner?: WithOwner;
}

/**
 * `root/relative…` as a directory owned by `owner`: missing components are created one by one
 * (mode 0700), existing ones must be real directories owned by the owner or root — never links.
 * `root` itself is trusted as it is (the user's home). Returns the path.
 */
export function ensureOwnedDir(root: string, relative: string[], options: OwnerOptions): string {
  const owner = options.owner ?? processOwner();
  return asOwner(options, () => {
    let path = root.replace(/\/+$/, "") || "/";
    for (const name of relative) {
      if (!name || name === "." || name === ".." || name.includes("/")) {
        throw new UnsafePathError(`"${name}" is not a directory name`);
      }
      path = path === "/" ? `/${name}` : `${path}/${name}`;
      let info = lstatOrUndefined(path);
      if (!info) {
        try {
          Deno.mkdirSync(path, { mode: 0o700 });
        } catch (error) {
          // Someone made it since the lstat: what it is gets checked below.
          if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
        }
        info = Deno.lstatSync(path);
        if (info.isDirectory && info.uid !== owner.uid) {
          Deno.chownSync(path, owner.uid, owner.gid);
          info = Deno.lstatSync(path);
        }
      }
      if (info.isSymlink) throw new UnsafePathError(`${path} is a symbolic link`);
      if (!info.isDirectory) throw new UnsafePathError(`${path} is not a directory`);
      if (info.uid !== owner.uid && info.uid !== 0) {
        throw new UnsafePathError(`${path} is owned by uid ${info.uid}, not ${owner.uid}`);
      }
    }
    return path;
  });
}

/**
 * Why the existing entry at `path` must not be read or replaced (a link, not a regular file, or
 * owned by neither `owner` nor root), or undefined (also when there is none).
 */
export function unsafeFileReason(path: string, owner: FileOwner): string | undefined {
  let info: Deno.FileInfo | undefined;
  try {
    info = lstatOrUndefined(path);
  } catch (error) {
    return `${path} cannot be checked: ${(error as Error).message}`;
  }
  if (!info) return undefined;
  if (info.isSymlink) return `${path} is a symbolic link`;
  if (!info.isFile) return `${path} is not a regular file`;
  if (info.uid !== owner.uid && info.uid !== 0) return `${path} is owned by uid ${info.uid}`;
  return undefined;
}

/**
 * The bytes of `path`, or undefined when it does not exist; throws {@link UnsafePathError} when
 * it is a link, not a regular file, or someone else's.
 */
export function readOwnedFileSync(path: string, options: OwnerOptions): Uint8Array | undefined {
  const owner = options.owner ?? processOwner();
  return asOwner(options, () => {
    const reason = unsafeFileReason(path, owner);
    if (reason) throw new UnsafePathError(reason);
    try {
      return Deno.readFileSync(path);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return undefined;
      throw error;
    }
  });
}

/** Options of {@link replaceFileSync}. */
export interface ReplaceOptions extends OwnerOptions {
  /** Permission bits of the new file (the umask may clear some). */
  mode: number;
  /** fsync the file and its directory before returning (survives a crash or power loss). */
  durable?: boolean;
}

/**
 * Replaces `path` with `bytes` without ever writing through a link: a temporary file created
 * with O_EXCL in the same directory, owned by the owner, optionally fsynced, then renamed over
 * `path`. Refuses (throws {@link UnsafePathError}) when `path` is a link, not a regular file, or
 * owned by someone other than the owner or root.
 */
export function replaceFileSync(path: string, bytes: Uint8Array, options: ReplaceOptions): void {
  const owner = options.owner ?? processOwner();
  asOwner(options, () => {
    const reason = unsafeFileReason(path, owner);
    if (reason) throw new UnsafePathError(reason);
    const dir = parentDir(path);
    const tmp = `${dir}/.${path.slice(dir.length + 1)}.${crypto.randomUUID().slice(0, 8)}.tmp`;
    const file = Deno.openSync(tmp, { write: true, createNew: true, mode: options.mode });
    try {
      let written = 0;
      while (written < bytes.length) written += file.writeSync(bytes.subarray(written));
      if (file.statSync().uid !== owner.uid) Deno.chownSync(tmp, owner.uid, owner.gid);
      if (options.durable) file.syncSync();
      file.close();
      Deno.renameSync(tmp, path);
    } catch (error) {
      try {
        file.close();
      } catch {
        // closed already
      }
      Deno.removeSync(tmp);
      throw error;
    }
    if (options.durable) syncDirectory(dir);
  });
}

function asOwner<T>(options: OwnerOptions, operations: () => T): T {
  const owner = options.owner;
  if (!owner || !options.withOwner || owner.uid === processOwner().uid) return operations();
  return options.withOwner(owner, operations);
}

function lstatOrUndefined(path: string): Deno.FileInfo | undefined {
  try {
    return Deno.lstatSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

/** fsync(2) on a directory, so a rename in it is on disk. */
function syncDirectory(dir: string): void {
  const handle = Deno.openSync(dir, { read: true });
  try {
    handle.syncSync();
  } finally {
    handle.close();
  }
}

/** Every directory above `path`, from `/` down (not `path` itself). */
function ancestors(path: string): string[] {
  const parts = path.split("/").filter(Boolean);
  const result = ["/"];
  for (let i = 1; i < parts.length; i++) result.push(`/${parts.slice(0, i).join("/")}`);
  return result;
}

function modeText(mode: number | null): string {
  return ((mode ?? 0) & 0o7777).toString(8).padStart(4, "0");
}
