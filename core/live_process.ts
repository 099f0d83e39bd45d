/**
 * Whether the k8stun that left a file behind (a journal, an API record) still runs. A pid alone
 * is not enough: after a crash the kernel may hand the same pid to an unrelated process, which
 * would keep a dead run's changes from ever being undone. So k8stun records its start time too
 * (on Linux the `starttime` field of `/proc/<pid>/stat`, proc(5)), and a process with the pid
 * but another start time is a different process.
 */

/** The fields of `/proc/<pid>/stat` from field 3 (state) on, or undefined. */
function statFields(pid: number): string[] | undefined {
  let stat: string;
  try {
    stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  } catch {
    return undefined;
  }
  // The command name (field 2) is in parentheses and may itself hold spaces and parentheses;
  // the fields after its last ")" start at field 3 (state).
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
}

/** A process's start time in clock ticks since boot, or undefined where it cannot be read. */
export function processStartTime(pid: number = Deno.pid): number | undefined {
  const ticks = Number(statFields(pid)?.[19]); // starttime, field 22
  return Number.isSafeInteger(ticks) ? ticks : undefined;
}

/**
 * Whether process `pid` runs and, when `startTime` is given, is the process that started then.
 * Where there is no `/proc` (macOS), `kill -0` tells; a process k8stun may not signal runs.
 */
export function processRuns(pid: number, startTime?: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  if (Deno.build.os !== "linux") return killZero(pid);
  const fields = statFields(pid);
  if (!fields) return false;
  // A zombie (state Z: killed, not yet reaped by its parent) owns nothing any more.
  if (fields[0] === "Z" || fields[0] === "X") return false;
  if (startTime === undefined) return true;
  const actual = processStartTime(pid);
  return actual === undefined || actual === startTime;
}

function killZero(pid: number): boolean {
  try {
    const out = new Deno.Command("kill", { args: ["-0", String(pid)], stderr: "piped" })
      .outputSync();
    return out.success || /not permitted/i.test(new TextDecoder().decode(out.stderr));
  } catch {
    return true; // cannot tell: never undo what a running k8stun may still own
  }
}
