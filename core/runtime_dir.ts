/**
 * k8stun's runtime directory: its journal (what to undo after a crash) and `api.json` (the API
 * token). `K8STUN_RUNTIME_DIR` when set, else `/run/k8stun` as root, else
 * `$XDG_RUNTIME_DIR/k8stun` or `~/.local/state/k8stun`. Whoever can write there can make root
 * rewrite files at `k8stun cleanup` or read the token, so it must belong to the user k8stun runs
 * as and be writable by no one else (core/safe_file.ts); k8stun refuses it otherwise.
 */
import { ensurePrivateDir, UnsafePathError, untrustedDirReason } from "./safe_file.ts";

/** The runtime directory for this process. */
export function runtimeDir(
  env: (name: string) => string | undefined = Deno.env.get,
  uid: number = Deno.uid() ?? 0,
): string {
  const override = env("K8STUN_RUNTIME_DIR");
  if (override) return override;
  if (uid === 0) return "/run/k8stun";
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
