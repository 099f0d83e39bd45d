/**
 * The user who ran k8stun. Under sudo, k8stun runs as root but acts for the user who typed the
 * command (sudo(8) sets SUDO_UID, SUDO_GID and SUDO_USER): their kubeconfig, their state files
 * (owned by them, never root-owned files in their home), their credential plugins (run as them).
 */
import type { FileOwner } from "./safe_file.ts";

/** Who k8stun acts for. */
export interface InvokingUser extends FileOwner {
  /** Login name, when known. */
  name?: string;
  home: string;
  /** Root acting for a sudo caller: files and plugins for the user must not be root's. */
  viaSudo: boolean;
}

/**
 * The invoking user: the sudo caller when root runs with a non-root SUDO_UID, else the process's
 * own user. The home comes from the passwd entry of SUDO_USER, else HOME.
 */
export function invokingUser(
  env: (name: string) => string | undefined = Deno.env.get,
  uid: number = Deno.uid() ?? 0,
): InvokingUser {
  const sudoUid = idFrom(env("SUDO_UID"));
  if (uid !== 0 || sudoUid === undefined || sudoUid === 0) {
    return {
      uid,
      gid: Deno.gid() ?? 0,
      name: env("USER"),
      home: env("HOME") || ".",
      viaSudo: false,
    };
  }
  const name = env("SUDO_USER") || undefined;
  const entry = name ? passwdEntry(name) : undefined;
  return {
    uid: sudoUid,
    gid: idFrom(env("SUDO_GID")) ?? entry?.gid ?? sudoUid,
    name,
    home: entry?.home || env("HOME") || ".",
    viaSudo: true,
  };
}

function idFrom(text: string | undefined): number | undefined {
  if (!text || !/^\d{1,10}$/.test(text)) return undefined;
  const id = Number(text);
  return id <= 0xfffffffe ? id : undefined;
}

function passwdEntry(name: string): { gid?: number; home?: string } | undefined {
  try {
    const line = Deno.readTextFileSync("/etc/passwd").split("\n")
      .find((l) => l.startsWith(`${name}:`));
    if (!line) return undefined;
    const fields = line.split(":");
    return { gid: idFrom(fields[3]), home: fields[5] || undefined };
  } catch {
    return undefined;
  }
}

/**
 * The command prefix that runs what follows as `user`: on Linux setpriv(1) with the user's uid,
 * gid and groups (its groups need a name; without one, none); elsewhere sudo(8) back to the user,
 * which resets the environment (a caller that needs variables passes them through env(1) after
 * it). Rust's process spawning, and so Deno's, cannot drop root's supplementary groups itself.
 */
export function asUserPrefix(
  user: InvokingUser,
  os: typeof Deno.build.os = Deno.build.os,
): string[] {
  if (os === "linux") {
    const groups = user.name ? "--init-groups" : "--clear-groups"; // --init-groups needs a name
    return ["setpriv", `--reuid=${user.uid}`, `--regid=${user.gid}`, groups, "--"];
  }
  return ["sudo", "-n", `--user=#${user.uid}`, `--group=#${user.gid}`, "--"];
}
