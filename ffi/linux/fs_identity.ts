/**
 * File operations with another user's filesystem identity: setfsuid(2)/setfsgid(2) change the
 * uid and gid the kernel checks file access with, and owns new files by, for the calling thread
 * only (credentials(7): glibc does not broadcast these two to other threads). Deno's synchronous
 * file calls run on the calling thread, so a synchronous block bracketed by the switch creates
 * files and directories as the user and cannot be steered by the user's links anywhere the user
 * could not write; Deno's async work runs on other threads and stays root. Root's supplementary
 * groups still apply inside the block.
 */
import type { FileOwner, WithOwner } from "../../core/safe_file.ts";

const SYMBOLS = {
  setfsuid: { parameters: ["u32"], result: "i32" },
  setfsgid: { parameters: ["u32"], result: "i32" },
} as const;

/**
 * Opens the switch; undefined when it is unavailable (not Linux, no glibc, or not root — only
 * root may take another uid). The library stays open for the life of the process.
 */
export function openFsIdentity(): WithOwner | undefined {
  if (Deno.build.os !== "linux" || Deno.uid() !== 0) return undefined;
  let lib: Deno.DynamicLibrary<typeof SYMBOLS>;
  try {
    lib = Deno.dlopen("libc.so.6", SYMBOLS);
  } catch {
    return undefined;
  }
  const { setfsuid, setfsgid } = lib.symbols;
  return <T>(owner: FileOwner, operations: () => T): T => {
    const previousGid = setfsgid(owner.gid) >>> 0;
    const previousUid = setfsuid(owner.uid) >>> 0;
    try {
      // Both calls return the previous id whether or not they succeeded; asking again tells.
      if ((setfsuid(owner.uid) >>> 0) !== owner.uid || (setfsgid(owner.gid) >>> 0) !== owner.gid) {
        throw new Error(`cannot act as uid ${owner.uid} gid ${owner.gid} (setfsuid failed)`);
      }
      return operations();
    } finally {
      setfsuid(previousUid);
      setfsgid(previousGid);
    }
  };
}
