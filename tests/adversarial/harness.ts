/**
 * The adversarial tier's common pieces: k8stun's demo in a lab, a legitimate client that keeps
 * working (or not) while an attack runs, and the resource bounds every flood test prints and
 * checks. Packets are built by hostile_packets.ts and sent by raw_socket.ts.
 */
import { assert } from "../assert.ts";
import { Lab, type LabProcess } from "../lab/lab.ts";

/** The CLI entry point, as the tests run it. */
export const MAIN = new URL("../../cli/main.ts", import.meta.url).pathname;

/** The lab's resolv.conf for the demo: k8stun's DNS on loopback, one quick try. */
export const DEMO_RESOLV = "nameserver 127.0.0.1\noptions ndots:1 timeout:1\n";

const UPSTREAM = new URL("../lab/upstream_dns.ts", import.meta.url).pathname;

/** The lab's resolver in {@link labWithResolver}: a peer namespace's address. */
export const RESOLVER = "10.77.0.2";

/**
 * A lab whose resolv.conf names {@link RESOLVER} with `options`, a real DNS server in a peer
 * namespace behind a veth link (tests/lab/upstream_dns.ts, started with `args`): what `tun_route`
 * diverts into the TUN.
 */
export async function labWithResolver(options: string, args: string[] = []): Promise<Lab> {
  const lab = await Lab.create({ resolvConf: `nameserver ${RESOLVER}\noptions ${options}\n` });
  try {
    const peer = await lab.addPeer();
    assert(peer.address === RESOLVER, `the lab's peer is ${peer.address}`);
    await peer.spawn(Deno.execPath(), ["run", "-A", UPSTREAM, ...args])
      .waitForOutput(/READY/, 30_000);
    return lab;
  } catch (error) {
    await lab[Symbol.asyncDispose]();
    throw error;
  }
}

/** Starts `k8stun demo` in the lab with `flags` and waits until it is ready. */
export async function startDemo(lab: Lab, flags: string[] = []): Promise<LabProcess> {
  const k8stun = lab.spawn(Deno.execPath(), ["run", "-A", MAIN, "demo", ...flags]);
  await k8stun.waitForOutput(/k8stun is ready on (\S+)/, 60_000);
  return k8stun;
}

/** The VIP k8stun's DNS gives `name` in the lab. */
export async function vipOf(lab: Lab, name: string): Promise<string> {
  const dig = await lab.run("dig", ["+short", name]);
  const vip = dig.stdout.trim();
  assert(/^\d+\.\d+\.\d+\.\d+$/.test(vip), `no VIP for ${name}: ${dig.stdout}${dig.stderr}`);
  return vip;
}

/** What a {@link CurlLoop} saw. */
export interface CurlLoopResult {
  ok: number;
  failed: number;
  /** The first few failures (exit code and stderr), for the assertion message. */
  failures: string[];
}

/**
 * A legitimate user during an attack: `curl` in the lab, one request after another, until
 * stopped. Each request has its own timeout, so a stalled tunnel shows as failures.
 */
export class CurlLoop {
  #stopped = false;
  readonly #result: CurlLoopResult = { ok: 0, failed: 0, failures: [] };
  readonly #running: Promise<void>;

  private constructor(lab: Lab, url: string, pauseMs: number, timeoutSeconds: number) {
    this.#running = (async () => {
      while (!this.#stopped) {
        const curl = await lab.run("curl", [
          "-sS",
          "-o",
          "/dev/null",
          "-m",
          `${timeoutSeconds}`,
          url,
        ]);
        if (curl.code === 0) this.#result.ok++;
        else {
          this.#result.failed++;
          if (this.#result.failures.length < 5) {
            this.#result.failures.push(`exit ${curl.code}: ${curl.stderr.trim()}`);
          }
        }
        await new Promise((resolve) => setTimeout(resolve, pauseMs));
      }
    })();
  }

  /** Starts requesting `url` (default the demo's hello service) from inside the lab. */
  static start(
    lab: Lab,
    url = "http://hello.demo/",
    options: { pauseMs?: number; timeoutSeconds?: number } = {},
  ): CurlLoop {
    return new CurlLoop(lab, url, options.pauseMs ?? 50, options.timeoutSeconds ?? 5);
  }

  /** Stops after the request in flight and returns the counts. */
  async stop(): Promise<CurlLoopResult> {
    this.#stopped = true;
    await this.#running;
    return this.#result;
  }
}

/** One reading of a process's memory and descriptors. */
export interface ResourceSample {
  rssKiB: number;
  fds: number;
}

/** Reads VmRSS and the number of open descriptors of `pid` from /proc. */
export function sampleResources(pid: number): ResourceSample {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const rssKiB = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? 0);
  let fds = 0;
  for (const _ of Deno.readDirSync(`/proc/${pid}/fd`)) fds++;
  return { rssKiB, fds };
}

/** Limits a flood must stay under. */
export interface ResourceBounds {
  maxRssMiB: number;
  maxFds: number;
}

/**
 * Samples a process's RSS and descriptors while an attack runs; `check` prints the peaks with
 * their bounds (the figures a reader of the test log wants) and asserts them.
 */
export class ResourceWatch {
  readonly #timer: ReturnType<typeof setInterval>;
  readonly #baseline: ResourceSample;
  readonly #peak: ResourceSample;

  private constructor(readonly pid: number, everyMs: number) {
    this.#baseline = sampleResources(pid);
    this.#peak = { ...this.#baseline };
    this.#timer = setInterval(() => this.#sample(), everyMs);
  }

  /** Starts sampling `pid` every `everyMs` (default 100 ms). */
  static start(pid: number, everyMs = 100): ResourceWatch {
    return new ResourceWatch(pid, everyMs);
  }

  #sample(): void {
    try {
      const now = sampleResources(this.pid);
      this.#peak.rssKiB = Math.max(this.#peak.rssKiB, now.rssKiB);
      this.#peak.fds = Math.max(this.#peak.fds, now.fds);
    } catch {
      // the process is gone: the test's own assertions say why
    }
  }

  /** Stops sampling, prints the peaks against `bounds` under `label`, and asserts them. */
  check(label: string, bounds: ResourceBounds): ResourceSample {
    clearInterval(this.#timer);
    this.#sample();
    const peakMiB = Math.round(this.#peak.rssKiB / 1024);
    const startMiB = Math.round(this.#baseline.rssKiB / 1024);
    console.log(
      `[bounds] ${label}: RSS ${startMiB} → peak ${peakMiB} MiB (bound ${bounds.maxRssMiB}), ` +
        `fds ${this.#baseline.fds} → peak ${this.#peak.fds} (bound ${bounds.maxFds})`,
    );
    assert(peakMiB <= bounds.maxRssMiB, `${label}: RSS peaked at ${peakMiB} MiB`);
    assert(this.#peak.fds <= bounds.maxFds, `${label}: ${this.#peak.fds} descriptors open`);
    return { ...this.#peak };
  }
}

/**
 * Memory held by this test's own JavaScript (heap plus ArrayBuffers). `deno test --parallel` runs
 * test files as workers of one process, so the process's RSS also counts the other files' work:
 * a test that measures itself uses this.
 */
export function isolateMemory(): number {
  const usage = Deno.memoryUsage();
  return usage.heapUsed + usage.external;
}
