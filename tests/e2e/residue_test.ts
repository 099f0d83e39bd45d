/**
 * Zero residue after SIGKILL at any point: `k8stun demo` is killed at random moments — during
 * start-up, while it carries traffic, and while it shuts down after SIGTERM — in DNS modes
 * `forward` (rewrites resolv.conf) and `tun_route` (policy rules to a real upstream behind a
 * veth link). After every other kill `k8stun cleanup` runs, otherwise the next start repairs;
 * then the lab must be exactly as before: resolv.conf byte for byte, the same policy rules,
 * routes (all tables) and links, no runtime files (journals, API records, half-written
 * temporaries). An edit someone makes to resolv.conf after k8stun wrote it survives cleanup.
 * The random moments come from a seed printed with the counts (K8STUN_RESIDUE_SEED replays).
 */
import { assert, assertEquals, assertMatch } from "../assert.ts";
import { Lab, type LabProcess, type LabResult, labUnavailable } from "../lab/lab.ts";
import { DEMO_RESOLV, MAIN } from "../adversarial/harness.ts";

const UPSTREAM = new URL("../lab/upstream_dns.ts", import.meta.url).pathname;
const TUN_ROUTE_RESOLV = "nameserver 10.77.0.2\noptions ndots:1 timeout:1 attempts:1\n";

type Phase = "start-up" | "running" | "shutdown";

/** A small seeded generator (mulberry32), so a failing sequence can be replayed. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Everything k8stun may change in the lab, as text to compare. */
async function snapshot(lab: Lab): Promise<Record<string, string>> {
  // Without IPv6 link-local routes: the kernel adds them to a new link a while after it is up.
  const net = await lab.sh(
    "ip rule; echo --; ip route show table all | grep -v 'fe80::'; echo --; " +
      "ip -br link | cut -d' ' -f1",
  );
  assertEquals(net.code, 0, net.stderr);
  const files: string[] = [];
  try {
    for await (const e of Deno.readDir(lab.env.K8STUN_RUNTIME_DIR)) files.push(e.name);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return {
    resolvConf: await Deno.readTextFile(lab.resolvConfPath),
    network: net.stdout,
    runtimeFiles: files.sort().join(" "),
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** One lab and its kill loop. */
class Lane {
  readonly phases: Record<Phase, number> = { "start-up": 0, running: 0, shutdown: 0 };
  /** What cleanup reported undoing, by kind of line (pids and paths left out). */
  readonly undone = new Map<string, number>();
  #readyMs = 1500;
  #background: Promise<LabResult>[] = [];
  userEdited = false;

  private constructor(
    readonly lab: Lab,
    readonly mode: "forward" | "tun_route",
    readonly next: () => number,
    readonly baseline: Record<string, string>,
  ) {}

  static async create(mode: "forward" | "tun_route", seed: number): Promise<Lane> {
    const lab = await Lab.create({
      resolvConf: mode === "forward" ? DEMO_RESOLV : TUN_ROUTE_RESOLV,
    });
    try {
      if (mode === "tun_route") {
        const peer = await lab.addPeer();
        await peer.spawn(Deno.execPath(), ["run", "-A", UPSTREAM]).waitForOutput(/READY/, 30_000);
      }
      return new Lane(lab, mode, random(seed), await snapshot(lab));
    } catch (error) {
      await lab.close();
      throw error;
    }
  }

  #spawn(): LabProcess {
    // The demo's scratch directory (its kubeconfig) goes to the lab, removed with it.
    return this.lab.spawn(
      Deno.execPath(),
      ["run", "-A", MAIN, "demo", "--dns-mode", this.mode, "--http", "8790"],
      { env: { TMPDIR: this.lab.dir } },
    );
  }

  async #ready(k8stun: LabProcess): Promise<void> {
    const started = Date.now();
    await k8stun.waitForOutput(/k8stun is ready on/, 60_000);
    this.#readyMs = Date.now() - started;
  }

  /** Starts k8stun, kills it at a random moment; returns when it is gone. */
  async kill(): Promise<{ phase: Phase; at: string }> {
    const roll = this.next();
    const k8stun = this.#spawn();
    const spawned = Date.now();
    let phase: Phase;
    let at: string;
    if (roll < 0.4) {
      const delay = Math.floor(this.next() * this.#readyMs);
      await sleep(delay);
      phase = /k8stun is ready/.test(k8stun.output) ? "running" : "start-up";
      at = `${delay} ms after spawn`;
    } else if (roll < 0.7) {
      await this.#ready(k8stun);
      this.#background.push(
        this.lab.sh("for i in 1 2 3 4; do curl -s -o /dev/null -m 2 http://hello.demo/; done"),
      );
      const delay = Math.floor(this.next() * 300);
      await sleep(delay);
      phase = "running";
      at = `${delay} ms into traffic`;
    } else {
      await this.#ready(k8stun);
      k8stun.signal("SIGTERM");
      const delay = Math.floor(this.next() * 80);
      await sleep(delay);
      phase = "shutdown";
      at = `${delay} ms after SIGTERM`;
    }
    k8stun.signal("SIGKILL");
    await k8stun.status;
    this.phases[phase]++;
    return { phase, at: `${at} (${Date.now() - spawned} ms in all)` };
  }

  /** `k8stun cleanup`, then the lab must be as it was. */
  async cleanUpAndCheck(what: string): Promise<void> {
    const out = await this.lab.run(Deno.execPath(), ["run", "-A", MAIN, "cleanup"]);
    assertEquals(out.code, 0, `${what}: ${out.stderr}`);
    assertEquals(await snapshot(this.lab), this.baseline, `${what}; cleanup said:\n${out.stdout}`);
    for (const line of out.stdout.trim().split("\n")) {
      const kind = line.replace(/^\S*\/(\.?[a-z]+)[-.][^:]*:/, "$1:").replace(/ to [\d.]+ /, " ");
      this.undone.set(kind, (this.undone.get(kind) ?? 0) + 1);
    }
  }

  /**
   * Once, after a kill that left resolv.conf rewritten: someone edits it, and cleanup keeps
   * the edit. The lane then puts the original back itself.
   */
  async userEditSurvives(): Promise<boolean> {
    if (this.mode !== "forward" || this.userEdited) return false;
    const current = await Deno.readTextFile(this.lab.resolvConfPath);
    if (!current.includes("nameserver 127.0.0.153")) return false;
    this.userEdited = true;
    const edited = `${current}nameserver 192.0.2.53 # added by the user\n`;
    await Deno.writeTextFile(this.lab.resolvConfPath, edited);
    const out = await this.lab.run(Deno.execPath(), ["run", "-A", MAIN, "cleanup"]);
    assertMatch(out.stdout, /\/etc\/resolv\.conf: changed by someone else since k8stun wrote it/);
    assertEquals(await Deno.readTextFile(this.lab.resolvConfPath), edited, "the edit survives");
    await Deno.writeTextFile(this.lab.resolvConfPath, this.baseline.resolvConf);
    assertEquals(await snapshot(this.lab), this.baseline);
    return true;
  }

  /** A last start repairs what the kill before it left, and a clean stop leaves nothing. */
  async finalStartAndStop(): Promise<void> {
    const k8stun = this.#spawn();
    await this.#ready(k8stun);
    k8stun.signal("SIGTERM");
    await k8stun.status;
    assertEquals(await snapshot(this.lab), this.baseline, `after a clean stop:\n${k8stun.output}`);
  }

  async close(): Promise<void> {
    await Promise.all(this.#background);
    await this.lab.close();
  }
}

/** `kills` SIGKILLs spread over `lanes` labs in parallel; prints the kills per phase. */
async function killRepeatedly(mode: "forward" | "tun_route", kills: number, lanes: number) {
  const seed = Number(Deno.env.get("K8STUN_RESIDUE_SEED") ?? Math.floor(Math.random() * 2 ** 31));
  const started = Date.now();
  const all = await Promise.all(
    Array.from({ length: lanes }, (_, i) => Lane.create(mode, seed + i)),
  );
  // Every lane runs to its end (or its failure) before the labs close: a lane still killing
  // and starting k8stuns in a lab being deleted would leave namespaces behind.
  const ended = await Promise.allSettled(all.map(async (lane, laneIndex) => {
    const share = Math.floor(kills / lanes) + (laneIndex < kills % lanes ? 1 : 0);
    for (let i = 0; i < share; i++) {
      const { phase, at } = await lane.kill();
      const what = `${mode}, seed ${seed}, lane ${laneIndex}, kill ${i + 1} (${phase}, ${at})`;
      if (await lane.userEditSurvives()) continue;
      // Every other kill: the next start repairs (checked at the next cleanup or the end).
      if (i % 2 === 1 || i === share - 1) await lane.cleanUpAndCheck(what);
    }
    await lane.finalStartAndStop();
  }));
  await Promise.all(all.map((lane) => lane.close()));
  const failed = ended.find((result) => result.status === "rejected");
  if (failed) throw failed.reason;
  const phases = { "start-up": 0, running: 0, shutdown: 0 };
  for (const lane of all) {
    for (const p of Object.keys(phases) as Phase[]) phases[p] += lane.phases[p];
  }
  console.log(
    `[residue] ${mode}: ${kills} SIGKILLs (start-up ${
      phases["start-up"]
    }, running ${phases.running}, shutdown ${phases.shutdown}) in ${lanes} labs, seed ${seed}, ${
      Math.round((Date.now() - started) / 1000)
    } s: no residue`,
  );
  assertEquals(phases["start-up"] + phases.running + phases.shutdown, kills);
  const undone = new Map<string, number>();
  for (const lane of all) {
    for (const [kind, n] of lane.undone) undone.set(kind, (undone.get(kind) ?? 0) + n);
  }
  console.log(`[residue] ${mode}: cleanup reported ${JSON.stringify(Object.fromEntries(undone))}`);
  if (mode === "forward") assert(all.some((lane) => lane.userEdited), "a user's edit was tried");
}

Deno.test({
  name:
    "residue: SIGKILL at any point, in forward and in tun_route mode, leaves nothing behind after cleanup or the next start",
  ignore: labUnavailable() !== undefined,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    // Both modes at once: five labs keep the 100 kills within about a minute and a half. Both
    // end (closing their labs) before a failure of either is reported.
    const modes = await Promise.allSettled([
      killRepeatedly("forward", 60, 3),
      killRepeatedly("tun_route", 40, 2),
    ]);
    for (const mode of modes) if (mode.status === "rejected") throw mode.reason;
  },
});
