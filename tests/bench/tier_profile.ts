/**
 * A CPU profile of a Deno process's main thread over the V8 inspector (Chrome DevTools Protocol,
 * `Profiler` domain), for `deno task bench tier` with K8STUN_BENCH_PROFILE=FILE: k8stun starts
 * with `--inspect`, its first 20 MiB echo is profiled, and FILE gets the `.cpuprofile` (for
 * DevTools) while stderr gets the functions with the most self time.
 */

/** Connects to the inspector at `url` and starts sampling; `stop()` returns the profile. */
export async function startProfile(url: string): Promise<{ stop(): Promise<CpuProfile> }> {
  const socket = new WebSocket(url);
  await new Promise((resolve, reject) => {
    socket.onopen = resolve;
    socket.onerror = reject;
  });
  let nextId = 1;
  const pending = new Map<number, (result: unknown) => void>();
  socket.onmessage = (event) => {
    const message = JSON.parse(event.data);
    pending.get(message.id)?.(message.result);
    pending.delete(message.id);
  };
  const call = (method: string, params: Record<string, unknown> = {}) =>
    new Promise<unknown>((resolve) => {
      const id = nextId++;
      pending.set(id, resolve);
      socket.send(JSON.stringify({ id, method, params }));
    });
  await call("Profiler.enable");
  await call("Profiler.setSamplingInterval", { interval: 200 });
  await call("Profiler.start");
  return {
    async stop() {
      const { profile } = await call("Profiler.stop") as { profile: CpuProfile };
      socket.close();
      return profile;
    },
  };
}

export interface CpuProfile {
  nodes: {
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number };
    children?: number[];
  }[];
  samples: number[];
  timeDeltas: number[];
}

/** The `top` functions by self time, as lines "share% name url:line". */
export function summarize(profile: CpuProfile, top = 40): string {
  const byNode = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const node = byNode.get(profile.samples[i])!;
    const { functionName, url, lineNumber } = node.callFrame;
    const key = `${functionName || "(anonymous)"} ${url.replace(/^.*\/(wt|main)\/[^/]+\//, "")}:${
      lineNumber + 1
    }`;
    self.set(key, (self.get(key) ?? 0) + (profile.timeDeltas[i] ?? 0));
  }
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  return [...self].sort((a, b) => b[1] - a[1]).slice(0, top)
    .map(([key, us]) => `${(100 * us / total).toFixed(1).padStart(5)} % ${key}`).join("\n");
}
