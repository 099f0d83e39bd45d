/**
 * CPU time of processes and threads from Linux's /proc, to the nanosecond: each task's
 * `schedstat` starts with the time it ran on a CPU. (stat(5)'s utime and stime count 10 ms ticks,
 * too coarse for an echo or a batch of queries that takes a fraction of a second: a thread's
 * figure could be off by a tick either way, a whole process's by a tick per thread.)
 */

/** Seconds the task at `path` (`/proc/PID` or `/proc/PID/task/TID`) has run so far. */
async function runSeconds(path: string): Promise<number> {
  return Number((await Deno.readTextFile(`${path}/schedstat`)).split(" ")[0]) / 1e9;
}

/** A task's name: the second field of its stat(5), between the parentheses. */
export async function taskName(path: string): Promise<string> {
  const stat = await Deno.readTextFile(`${path}/stat`);
  return stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
}

/** CPU seconds of each live thread of `pid`, summed by thread name. */
export async function threadCpuSeconds(pid: number): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for await (const task of Deno.readDir(`/proc/${pid}/task`)) {
    const path = `/proc/${pid}/task/${task.name}`;
    try {
      const name = await taskName(path);
      out.set(name, (out.get(name) ?? 0) + await runSeconds(path));
    } catch {
      // the thread ended
    }
  }
  return out;
}

/**
 * CPU seconds of `pid`'s live threads together. (The process's own schedstat is its main
 * thread's alone.) Threads that ended are not counted: measure long-lived processes.
 */
export async function processCpuSeconds(pid: number): Promise<number> {
  let total = 0;
  for (const seconds of (await threadCpuSeconds(pid)).values()) total += seconds;
  return total;
}

/** CPU seconds of this process's main thread (a server on the main thread); NaN off Linux. */
export function mainThreadCpuSeconds(): number {
  try {
    const schedstat = Deno.readTextFileSync(`/proc/self/task/${Deno.pid}/schedstat`);
    return Number(schedstat.split(" ")[0]) / 1e9;
  } catch {
    return NaN;
  }
}
