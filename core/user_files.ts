/**
 * Files the invoking user names — their kubeconfig, and the certificates, keys and token files it
 * points at — read with the user's own access, never root's.
 *
 * Under sudo k8stun runs as root, and a kubeconfig may name any path. Read as root, a `tokenFile`
 * only root may read would be sent as a bearer token to a server the user chose, and a parse error
 * could quote a line of the password database: a user allowed to run only `sudo k8stun` would read every
 * file of the machine. So under sudo each file is read by `head` run as the user (asUserPrefix:
 * the user's uid, gid and groups), and a file the user cannot read fails as it would for them.
 * The text is kept with the file's identity (inode, size, mtime as root sees them), so the
 * credentials asked for each new API connection do not start a process each time.
 *
 * Either way only a regular file is read, up to {@link MAX_USER_FILE}: a FIFO would block k8stun
 * and a device may never end.
 */
import { asUserPrefix, type InvokingUser } from "./invoking_user.ts";
import { oneLine } from "./peer_text.ts";

/** The most bytes a kubeconfig, certificate, key or token file may hold. */
export const MAX_USER_FILE = 16 * 1024 * 1024;

/** Reads the text of a file the invoking user named; throws with a message naming the cause. */
export type ReadUserFile = (path: string) => string;

/** Reads as this process, bounded: the invoking user is the process's own user. */
export const readOwnFile: ReadUserFile = (path) => {
  regularFileInfo(path);
  using file = Deno.openSync(path);
  const chunks: Uint8Array[] = [];
  let total = 0;
  const buffer = new Uint8Array(64 * 1024);
  while (true) {
    const n = file.readSync(buffer);
    if (n === null) break;
    total += n;
    if (total > MAX_USER_FILE) throw tooLarge();
    chunks.push(buffer.slice(0, n));
  }
  return decode(chunks);
};

/** The reader for `user`: as the process itself, or as the sudo caller. */
export function userFileReader(
  user: InvokingUser,
  os: typeof Deno.build.os = Deno.build.os,
): ReadUserFile {
  if (!user.viaSudo) return readOwnFile;
  const [runner, ...runnerArgs] = asUserPrefix(user, os);
  const known = new Map<string, { identity: string; text: string }>();
  return (path) => {
    const info = regularFileInfo(path);
    // What changes when a file is replaced or written: inode, size, modification time.
    const identity = info && `${info.ino}:${info.size}:${info.mtime?.getTime()}`;
    const cached = known.get(path);
    if (identity !== undefined && cached?.identity === identity) return cached.text;
    const output = new Deno.Command(runner, {
      args: [...runnerArgs, "head", "-c", String(MAX_USER_FILE + 1), "--", path],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).outputSync();
    if (!output.success) {
      const reason = oneLine(new TextDecoder().decode(output.stderr));
      throw new Error(reason || `reading it as uid ${user.uid} failed (${output.code})`);
    }
    if (output.stdout.length > MAX_USER_FILE) throw tooLarge();
    const text = decode([output.stdout]);
    if (identity !== undefined) known.set(path, { identity, text });
    return text;
  };
}

/**
 * The file's metadata as this process sees it, or undefined when it cannot be looked at (the read
 * says why). A FIFO or a device is refused: it is no kubeconfig or credential, opening a FIFO
 * would block k8stun until someone writes to it, and a device may never end.
 */
function regularFileInfo(path: string): Deno.FileInfo | undefined {
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(path);
  } catch {
    return undefined;
  }
  if (!info.isFile) throw new Error("not a regular file");
  return info;
}

function tooLarge(): Error {
  return new Error(
    `larger than ${MAX_USER_FILE / 1024 / 1024} MiB: not a kubeconfig or credential`,
  );
}

function decode(chunks: Uint8Array[]): string {
  const decoder = new TextDecoder();
  return chunks.map((chunk) => decoder.decode(chunk, { stream: true })).join("") + decoder.decode();
}
