/**
 * The lab: a fresh network namespace (loopback up, nothing else) with its own /etc/resolv.conf,
 * in which tests run k8stun and real clients (curl, dig, nc, ping, getent). Built on
 * `ip netns`: `ip netns exec` gives every process a private mount namespace with
 * `/etc/netns/<name>/resolv.conf` bind-mounted over `/etc/resolv.conf`, so the host's file and
 * routes are never touched. `close()` (or `await using`) kills every process the lab started,
 * by PID, deletes the namespace and its files — also when the test body threw.
 *
 * @example
 * ```ts
 * await using lab = await Lab.create({ resolvConf: "nameserver 127.0.0.1\n" });
 * const k8stun = lab.spawn(Deno.execPath(), ["run", "-A", "cli/main.ts", "demo"]);
 * await k8stun.waitForOutput(/is ready/, 30_000);
 * const { stdout } = await lab.run("curl", ["-s", "http://hello.demo/"]);
 * ```
 */

/** Output of a finished command. */
export interface LabResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** A process running in the lab. */
export class LabProcess {
  #output = "";
  readonly #waiters = new Set<() => void>();
  readonly status: Promise<Deno.CommandStatus>;

  constructor(readonly child: Deno.ChildProcess) {
    const collect = async (stream: ReadableStream<Uint8Array>) => {
      const decoder = new TextDecoder();
      for await (const chunk of stream) {
        this.#output += decoder.decode(chunk, { stream: true });
        for (const wake of this.#waiters) wake();
      }
    };
    collect(child.stdout).catch(() => {});
    collect(child.stderr).catch(() => {});
    this.status = child.status;
  }

  /** Everything written to stdout and stderr so far. */
  get output(): string {
    return this.#output;
  }

  get pid(): number {
    return this.child.pid;
  }

  /** Waits until the output matches `pattern`; throws with the output so far on timeout or exit. */
  async waitForOutput(pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    let exited = false;
    this.status.then(() => exited = true);
    while (true) {
      const match = this.#output.match(pattern);
      if (match) return match;
      if (exited) throw new Error(`process exited before printing ${pattern}:\n${this.#output}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${pattern}:\n${this.#output}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, Math.min(left, 200));
        function done() {
          clearTimeout(timer);
          resolve();
        }
        this.#waiters.add(done);
      });
      this.#waiters.clear();
    }
  }

  /** Sends a signal (ignored if the process is gone). */
  signal(signal: Deno.Signal): void {
    try {
      this.child.kill(signal);
    } catch {
      // already exited
    }
  }
}

let counter = 0;

/** A second namespace joined to the lab by a veth pair (see {@link Lab.addPeer}). */
export interface LabPeer {
  /** The peer's address on the link (the lab's side is {@link Lab.linkAddress}). */
  address: string;
  /** Starts a long-running process in the peer namespace (killed with the lab). */
  spawn(command: string, args: string[]): LabProcess;
}

/** A network namespace for one test. */
export class Lab implements AsyncDisposable {
  readonly #processes = new Set<LabProcess>();
  #closed = false;
  #peer?: string;
  /** The lab's address on the link to its peer. */
  readonly linkAddress = "10.77.0.1";

  /**
   * @param dir the lab's scratch directory for test files (fixtures, wrappers) and k8stun's
   * state: a temporary directory, not under `/etc/netns/<name>/`, whose every entry
   * `ip netns exec` would bind-mount over `/etc`.
   */
  private constructor(readonly name: string, readonly dir: string) {}

  /** Creates the namespace, brings loopback up and writes its resolv.conf. */
  static async create(options: { resolvConf?: string } = {}): Promise<Lab> {
    const name = `k8stun-lab-${Deno.pid}-${++counter}-${Math.random().toString(36).slice(2, 6)}`;
    const dir = await Deno.makeTempDir({ prefix: `${name}-` });
    await mustRun("ip", ["netns", "add", name]);
    const lab = new Lab(name, dir);
    try {
      await Deno.mkdir(`/etc/netns/${name}`, { recursive: true });
      await Deno.writeTextFile(
        `/etc/netns/${name}/resolv.conf`,
        options.resolvConf ?? "nameserver 127.0.0.1\n",
      );
      await mustRun("ip", ["netns", "exec", name, "ip", "link", "set", "lo", "up"]);
      return lab;
    } catch (error) {
      await lab.close();
      throw error;
    }
  }

  /**
   * Environment for processes in the lab: k8stun's journal, API file and VIP state go to the
   * lab's own directory, so parallel labs never see each other's runs.
   */
  get env(): Record<string, string> {
    const dir = this.dir;
    return {
      K8STUN_RUNTIME_DIR: `${dir}/run`,
      XDG_STATE_HOME: `${dir}/state`,
      XDG_CONFIG_HOME: `${dir}/config`,
    };
  }

  /** The lab's resolv.conf as a path on the host (to read or check it byte for byte). */
  get resolvConfPath(): string {
    return `/etc/netns/${this.name}/resolv.conf`;
  }

  /** Starts a long-running process inside the lab. */
  spawn(
    command: string,
    args: string[],
    options: { env?: Record<string, string>; cwd?: string } = {},
  ): LabProcess {
    return this.#spawnIn(this.name, command, args, {
      env: { ...this.env, ...options.env },
      cwd: options.cwd,
    });
  }

  /** Starts a process in `namespace`; the lab kills it when it closes. */
  #spawnIn(
    namespace: string,
    command: string,
    args: string[],
    options: { env?: Record<string, string>; cwd?: string } = {},
  ): LabProcess {
    const child = new Deno.Command("ip", {
      args: ["netns", "exec", namespace, command, ...args],
      env: options.env,
      cwd: options.cwd,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const process = new LabProcess(child);
    this.#processes.add(process);
    return process;
  }

  /** Runs a command inside the lab to completion. */
  async run(
    command: string,
    args: string[],
    options: { timeoutMs?: number; stdin?: Uint8Array } = {},
  ): Promise<LabResult> {
    const child = new Deno.Command("timeout", {
      env: this.env,
      args: [
        String(Math.ceil((options.timeoutMs ?? 30_000) / 1000)),
        "ip",
        "netns",
        "exec",
        this.name,
        command,
        ...args,
      ],
      stdin: options.stdin ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    if (options.stdin) {
      const writer = child.stdin.getWriter();
      await writer.write(options.stdin);
      await writer.close();
    }
    const out = await child.output();
    return {
      code: out.code,
      stdout: new TextDecoder().decode(out.stdout),
      stderr: new TextDecoder().decode(out.stderr),
    };
  }

  /** Runs a shell snippet inside the lab. */
  sh(script: string, timeoutMs?: number): Promise<LabResult> {
    return this.run("sh", ["-c", script], { timeoutMs });
  }

  /**
   * Joins a second namespace to the lab by a veth pair created inside the namespaces (the host's
   * interfaces are never touched): lab 10.77.0.1/24, peer 10.77.0.2/24 — e.g. for an upstream DNS
   * server that the lab's resolv.conf names, reached through a real interface.
   */
  async addPeer(): Promise<LabPeer> {
    const peer = `${this.name}-p`;
    const suffix = Math.random().toString(36).slice(2, 8);
    const [ours, theirs] = [`k8l${suffix}a`, `k8l${suffix}b`];
    await mustRun("ip", ["netns", "add", peer]);
    this.#peer = peer;
    const inLab = (...args: string[]) => mustRun("ip", ["-n", this.name, ...args]);
    const inPeer = (...args: string[]) => mustRun("ip", ["-n", peer, ...args]);
    await inLab("link", "add", ours, "type", "veth", "peer", "name", theirs, "netns", peer);
    await inLab("addr", "add", `${this.linkAddress}/24`, "dev", ours);
    await inLab("link", "set", ours, "up");
    await inPeer("addr", "add", "10.77.0.2/24", "dev", theirs);
    await inPeer("link", "set", theirs, "up");
    await inPeer("link", "set", "lo", "up");
    return {
      address: "10.77.0.2",
      spawn: (command, args) => this.#spawnIn(peer, command, args),
    };
  }

  /** Kills every process the lab started, then deletes the namespace and its files. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const process of this.#processes) {
      process.signal("SIGKILL");
      await Promise.race([process.status, new Promise((r) => setTimeout(r, 2000))]);
    }
    await run("ip", ["netns", "delete", this.name]);
    if (this.#peer) await run("ip", ["netns", "delete", this.#peer]);
    await Deno.remove(`/etc/netns/${this.name}`, { recursive: true }).catch(() => {});
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

async function run(command: string, args: string[]): Promise<LabResult> {
  const out = await new Deno.Command(command, { args, stdout: "piped", stderr: "piped" }).output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

async function mustRun(command: string, args: string[]): Promise<void> {
  const out = await run(command, args);
  if (out.code !== 0) throw new Error(`${command} ${args.join(" ")} failed: ${out.stderr.trim()}`);
}

/** Why lab tests cannot run here, or undefined when they can (root and `ip netns`). */
export function labUnavailable(): string | undefined {
  if (Deno.uid() !== 0) return "lab tests need root (network namespaces)";
  try {
    Deno.statSync("/dev/net/tun");
  } catch {
    return "lab tests need /dev/net/tun";
  }
  return undefined;
}

/**
 * A test that runs in a fresh lab, removed afterwards. Skipped where labs cannot be made
 * ({@link labUnavailable}); the resource sanitizers are off because the lab's processes and
 * sockets outlive single operations by design.
 */
export function labTest(
  name: string,
  fn: (lab: Lab) => Promise<void>,
  options: { resolvConf?: string } = {},
): void {
  Deno.test({
    name,
    ignore: labUnavailable() !== undefined,
    sanitizeResources: false,
    sanitizeOps: false,
    async fn() {
      await using lab = await Lab.create(options);
      await fn(lab);
    },
  });
}
