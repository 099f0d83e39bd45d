/**
 * Who may have written the plugin code k8stun runs as root. A plugin file, its folder or the
 * plugin directory that another user can write is a way for that user to run code as root (the
 * same rule sudo applies to sudoers files and OpenSSH to authorized_keys): such code is refused,
 * naming the path, the reason and the fix.
 */
import { dirname } from "node:path";

/**
 * The owners plugin code may have when k8stun runs as root: root and the user who ran sudo
 * (`SUDO_UID`). `undefined` when not root: then the code runs with the user's own rights anyway.
 */
export function rootCodeOwners(
  uid: number | null = Deno.uid(),
  env: (name: string) => string | undefined = Deno.env.get,
): number[] | undefined {
  if (uid !== 0) return undefined;
  const sudo = Number(env("SUDO_UID"));
  return Number.isInteger(sudo) && sudo > 0 ? [0, sudo] : [0];
}

/** What a checked path is to the plugin, for messages. */
export type PluginPathRole = "plugin file" | "plugin folder" | "plugin directory";

/** Throws when `path` is writable by group or others, or owned by anyone but `owners`. */
export async function assertTrustedPath(
  path: string,
  role: PluginPathRole,
  owners: number[],
): Promise<void> {
  const info = await Deno.stat(path);
  const refuse = (why: string, fix: string) =>
    new Error(
      `${path}: refusing to run plugin code as root: this ${role} ${why}, so someone other ` +
        `than root or you could change the code k8stun runs; fix it with \`${fix}\``,
    );
  if (info.uid !== null && !owners.includes(info.uid)) {
    const who = owners.length > 1 ? `root or uid ${owners[1]} (who ran sudo)` : "root";
    throw refuse(`is owned by uid ${info.uid}, not ${who}`, `sudo chown root ${path}`);
  }
  const mode = info.mode ?? 0;
  if ((mode & 0o022) !== 0) {
    const by = (mode & 0o022) === 0o022 ? "group and others" : mode & 0o020 ? "group" : "others";
    throw refuse(
      `is writable by ${by} (mode ${(mode & 0o7777).toString(8).padStart(4, "0")})`,
      `chmod go-w ${path}`,
    );
  }
}

/**
 * A check for each file a plugin loads (entry and imports, by real path): the file and its
 * folder, each folder once.
 */
export function pluginFileCheck(owners: number[]): (file: string) => Promise<void> {
  const folders = new Set<string>();
  return async (file) => {
    await assertTrustedPath(file, "plugin file", owners);
    const folder = dirname(file);
    if (folders.has(folder)) return;
    await assertTrustedPath(folder, "plugin folder", owners);
    folders.add(folder);
  };
}
