/**
 * The journal and the runtime directory, attacked: a journal that names files k8stun never
 * changes, a runtime directory others can write, a crash in the middle of rewriting
 * resolv.conf, a stale api.json. Everything runs in temporary directories through
 * K8STUN_RUNTIME_DIR; the real /etc and /run are never touched.
 */
import { assert, assertEquals, assertMatch } from "../assert.ts";
import { FileJournal, repairJournals, sha256 } from "../../core/journal.ts";
import { processStartTime } from "../../core/live_process.ts";
import { runtimeDir } from "../../core/runtime_dir.ts";
import { cleanUpAfterDeadRuns } from "../../cli/commands/cleanup.ts";
import { forwardResolvConf } from "../../plugins/dns/forward.ts";
import { resolverFile } from "../../plugins/dns/macos_resolver.ts";
import { Lab, labUnavailable } from "../lab/lab.ts";

const ignore = Deno.uid() !== 0;
const MAIN = new URL("../../cli/main.ts", import.meta.url).pathname;
const ROOT = new URL("../../", import.meta.url).href;
const CONFIG = new URL("../../deno.json", import.meta.url).pathname;
const encode = (text: string) => new TextEncoder().encode(text);

async function cleanup(runtimeDir: string) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "cleanup"],
    env: { K8STUN_RUNTIME_DIR: runtimeDir },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

async function withTempDir(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "k8stun-files-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * A crashed run's journal (by default pid 0x7fffffff, which runs nowhere) changing each of
 * `files`.
 */
async function crashedJournal(
  path: string,
  files: { path: string; original: string; current: string }[],
  owner: { pid: number; startTime?: number } = { pid: 0x7fffffff },
) {
  const entries = [];
  for (const f of files) {
    entries.push({
      kind: "file",
      path: f.path,
      original: btoa(f.original),
      intended: sha256(encode(f.current)),
      written: sha256(encode(f.current)), // what journals of older versions hold
    });
  }
  await Deno.writeTextFile(
    path,
    JSON.stringify({ ...owner, startedAt: "", entries }),
    { mode: 0o600 },
  );
}

Deno.test({
  name: "files: cleanup refuses a journal entry naming a file k8stun never changes",
  ignore,
  async fn() {
    await withTempDir(async (dir) => {
      const run = `${dir}/run`;
      await Deno.mkdir(run, { mode: 0o700 });
      const victim = `${dir}/shadow`;
      await Deno.writeTextFile(victim, "root:$6$real-hash:19000::::::\n");
      await crashedJournal(`${run}/journal.json`, [
        // Matches the victim's current bytes: a journal that is obeyed overwrites it.
        { path: victim, original: "root::0::::::\n", current: "root:$6$real-hash:19000::::::\n" },
        // Hash of nothing real: even an obeying cleanup leaves the real file alone.
        { path: "/etc/shadow", original: "root::0::::::\n", current: "not the real shadow" },
        { path: "/etc/resolver/../shadow", original: "x", current: "y" },
      ]);
      const out = await cleanup(run);
      assertEquals(out.code, 0, out.stderr);
      assertEquals(await Deno.readTextFile(victim), "root:$6$real-hash:19000::::::\n");
      for (const path of [victim, "/etc/shadow", "/etc/resolver/../shadow"]) {
        assert(out.stdout.includes(`${path}: refused`), out.stdout);
      }
      assertMatch(out.stdout, /not a file k8stun changes/);
    });
  },
});

Deno.test({
  name: "files: cleanup refuses a runtime directory others can write or another user owns",
  ignore,
  async fn() {
    await withTempDir(async (dir) => {
      const run = `${dir}/run`;
      await Deno.mkdir(run);
      await Deno.chmod(run, 0o777);
      await crashedJournal(`${run}/journal.json`, []);
      const open = await cleanup(run);
      assert(open.code !== 0, open.stdout);
      assertMatch(open.stderr, /refusing runtime directory .*writable by group or others/);

      await Deno.chmod(run, 0o700);
      await Deno.chown(run, 65534, 65534);
      const foreign = await cleanup(run);
      assert(foreign.code !== 0, foreign.stdout);
      assertMatch(foreign.stderr, /refusing runtime directory .*owned by uid 65534/);

      await Deno.chown(run, 0, 0);
      const fine = await cleanup(run);
      assertEquals(fine.code, 0, fine.stderr);
    });
  },
});

Deno.test({
  name:
    "files: the runtime directory is created root-only, and a journal is not written into an open one",
  ignore,
  async fn() {
    await withTempDir(async (dir) => {
      const fresh = new FileJournal(`${dir}/new/journal.json`);
      await fresh.recordStep("test", {});
      assertEquals((await Deno.stat(`${dir}/new`)).mode! & 0o777, 0o700);
      assertEquals((await Deno.stat(`${dir}/new/journal.json`)).mode! & 0o777, 0o600);

      await Deno.mkdir(`${dir}/open`);
      await Deno.chmod(`${dir}/open`, 0o777);
      const open = new FileJournal(`${dir}/open/journal.json`);
      let refused: Error | undefined;
      await open.recordStep("test", {}).catch((e) => refused = e);
      assertMatch(String(refused), /writable by group or others/);
      assertEquals([...Deno.readDirSync(`${dir}/open`)], []);
    });
  },
});

Deno.test({
  name: "files: cleanup removes a stale api.json (a dead run's API token) and keeps a live one",
  ignore,
  async fn() {
    await withTempDir(async (dir) => {
      const run = `${dir}/run`;
      await Deno.mkdir(run, { mode: 0o700 });
      const info = (pid: number) =>
        JSON.stringify({ url: "http://127.0.0.1:1", token: "secret", pid, startedAt: "" });
      await Deno.writeTextFile(`${run}/api.json`, info(0x7fffffff), { mode: 0o600 });
      const stale = await cleanup(run);
      assertEquals(stale.code, 0, stale.stderr);
      assertMatch(stale.stdout, /api\.json: removed/);
      let gone = false;
      await Deno.stat(`${run}/api.json`).catch(() => gone = true);
      assert(gone, "the stale token file is gone");

      await Deno.writeTextFile(`${run}/api.json`, info(Deno.pid), { mode: 0o600 });
      const live = await cleanup(run);
      assertEquals(live.stdout.trim(), "nothing to clean up");
      assert((await Deno.stat(`${run}/api.json`)).isFile, "a running k8stun's file stays");
    });
  },
});

/**
 * Runs forward mode on the lab's /etc/resolv.conf in a process that dies (exit 137, as after
 * SIGKILL) right before or right after k8stun's write of the file, or in between, when open(2)
 * has truncated it and nothing is written yet.
 */
async function crashDuringForward(lab: Lab, when: "before" | "after" | "truncated") {
  const script = `${lab.dir}/crash.ts`;
  await Deno.writeTextFile(
    script,
    `
import { FileJournal } from "${ROOT}core/journal.ts";
import { forwardMode } from "${ROOT}plugins/dns/forward.ts";
const write = Deno.writeFile;
Object.defineProperty(Deno, "writeFile", {
  value: async (path, data, options) => {
    if (${JSON.stringify(when)} === "before") Deno.exit(137);
    if (${JSON.stringify(when)} === "truncated") {
      await write(path, new Uint8Array(), options);
      Deno.exit(137);
    }
    await write(path, data, options);
    Deno.exit(137);
  },
});
const log = { debug() {}, info() {}, warn() {}, error() {} };
await forwardMode({ os: "linux" }).apply({
  server: { address: "127.0.0.153", port: 53 },
  domains: ["cluster.local"],
  resolvers: { configured: ["192.0.2.1"], upstreams: ["192.0.2.1"], stub: false },
  journal: new FileJournal(),
  log,
});
`,
  );
  const out = await lab.run(Deno.execPath(), [
    "run",
    "-A",
    "--no-check",
    "--config",
    CONFIG,
    script,
  ]);
  assertEquals(out.code, 137, out.stderr);
}

function labCleanup(lab: Lab) {
  return lab.run(Deno.execPath(), ["run", "-A", MAIN, "cleanup"]);
}

const ORIGINAL = "nameserver 192.0.2.1\noptions ndots:1\n";

Deno.test({
  name:
    "files: a crash right after resolv.conf is rewritten is still undone (intent journaled first)",
  ignore: labUnavailable() !== undefined,
  async fn() {
    await using lab = await Lab.create({ resolvConf: ORIGINAL });
    await crashDuringForward(lab, "after");
    assertMatch(await Deno.readTextFile(lab.resolvConfPath), /nameserver 127\.0\.0\.153/);
    const out = await labCleanup(lab);
    assertEquals(out.code, 0, out.stderr);
    assertEquals(out.stdout.trim(), "/etc/resolv.conf: restored");
    assertEquals(await Deno.readTextFile(lab.resolvConfPath), ORIGINAL);
  },
});

Deno.test({
  name: "files: a crash before the write, or a user's edit after it, leaves resolv.conf alone",
  ignore: labUnavailable() !== undefined,
  async fn() {
    await using lab = await Lab.create({ resolvConf: ORIGINAL });
    await crashDuringForward(lab, "before");
    const untouched = await labCleanup(lab);
    assertEquals(untouched.stdout.trim(), "/etc/resolv.conf: never changed, left as it is");
    assertEquals(await Deno.readTextFile(lab.resolvConfPath), ORIGINAL);

    await crashDuringForward(lab, "after");
    const edited = "nameserver 198.51.100.7\n";
    await Deno.writeTextFile(lab.resolvConfPath, edited);
    const out = await labCleanup(lab);
    assertMatch(out.stdout, /changed by someone else/);
    assertEquals(await Deno.readTextFile(lab.resolvConfPath), edited);
  },
});

Deno.test({
  name:
    "files: a kill between resolv.conf's truncation and k8stun's write is undone (the empty file is k8stun's)",
  ignore: labUnavailable() !== undefined,
  async fn() {
    await using lab = await Lab.create({ resolvConf: ORIGINAL });
    await crashDuringForward(lab, "truncated");
    assertEquals(await Deno.readTextFile(lab.resolvConfPath), "");
    const out = await labCleanup(lab);
    assertEquals(out.stdout.trim(), "/etc/resolv.conf: restored");
    assertEquals(await Deno.readTextFile(lab.resolvConfPath), ORIGINAL);
  },
});

Deno.test({
  name:
    "files: cleanup undoes the journal of every k8stun that is gone and never a running one's, even when its pid was reused",
  ignore,
  async fn() {
    await withTempDir(async (dir) => {
      const run = `${dir}/run`;
      await Deno.mkdir(run, { mode: 0o700 });
      const file = (name: string) => `${dir}/resolver/${name}`;
      await Deno.mkdir(`${dir}/resolver`);
      // Three runs changed three files: one is dead, one runs (this test), one's pid now
      // belongs to another process (this test, which started at another time). The pid
      // inside a journal counts, not the one in its name.
      const changes = ["dead", "live", "reused"].map((name) => ({
        path: file(name),
        original: `${name} original\n`,
        current: `${name} by k8stun\n`,
      }));
      for (const c of changes) await Deno.writeTextFile(c.path, c.current);
      const me = { pid: Deno.pid, startTime: processStartTime() };
      await crashedJournal(`${run}/journal-2147483647.json`, [changes[0]]);
      await crashedJournal(`${run}/journal-${Deno.pid}.json`, [changes[1]], me);
      await crashedJournal(`${run}/journal-${Deno.pid + 1}.json`, [changes[2]], {
        pid: Deno.pid,
        startTime: me.startTime! - 1,
      });
      // Only /etc/resolv.conf and /etc/resolver/* are k8stun's: a library-level repair with a
      // test directory allowed shows what is undone.
      const repair = await repairJournals(
        (path) => path.startsWith(`${dir}/resolver/`),
        undefined,
        run,
      );
      assertEquals(repair.running, [Deno.pid]);
      assertEquals(repair.messages.sort(), [
        `${file("dead")}: restored`,
        `${file("reused")}: restored`,
      ]);
      assertEquals(
        await Deno.readTextFile(file("live")),
        "live by k8stun\n",
        "a running k8stun's change stays",
      );
      assertEquals([...Deno.readDirSync(run)].map((e) => e.name), [`journal-${Deno.pid}.json`]);

      const out = await cleanup(run);
      assertEquals(out.code, 0, out.stderr);
      assertEquals(
        out.stdout.trim(),
        `k8stun (pid ${Deno.pid}) is running: its changes are left to it (stop it first)`,
      );
    });
  },
});

Deno.test({
  name:
    "files: cleanup removes the API records and half-written files of k8stuns that are gone, and keeps a running one's",
  ignore,
  async fn() {
    await withTempDir(async (dir) => {
      const run = `${dir}/run`;
      await Deno.mkdir(run, { mode: 0o700 });
      const record = (pid: number) =>
        JSON.stringify({ url: "http://127.0.0.1:1", token: "secret", pid, startedAt: "" });
      const dead = 2147483647;
      await Deno.writeTextFile(`${run}/api-${dead}.json`, record(dead), { mode: 0o600 });
      await Deno.writeTextFile(`${run}/api-${Deno.pid}.json`, record(Deno.pid), { mode: 0o600 });
      await Deno.writeTextFile(`${run}/api-12345678.json`, "{ damaged", { mode: 0o600 });
      for (const name of [`.journal-${dead}.json.0a1b2c3d.tmp`, `.api-${dead}.json.0a1b2c3d.tmp`]) {
        await Deno.writeTextFile(`${run}/${name}`, "{", { mode: 0o600 });
      }
      await Deno.writeTextFile(`${run}/.api-${Deno.pid}.json.0a1b2c3d.tmp`, "{", { mode: 0o600 });
      await Deno.writeTextFile(`${run}/notes.txt`, "someone's file");
      const out = await cleanup(run);
      assertEquals(out.code, 0, out.stderr);
      assertEquals(out.stdout.trim().split("\n").length, 4, out.stdout);
      assertMatch(out.stdout, new RegExp(`api-${dead}\\.json: removed \\(the API token`));
      assertMatch(out.stdout, /api-12345678\.json: removed/);
      assertMatch(
        out.stdout,
        new RegExp(`\\.journal-${dead}\\.json\\.0a1b2c3d\\.tmp: removed \\(a half-written`),
      );
      assertEquals([...Deno.readDirSync(run)].map((e) => e.name).sort(), [
        `.api-${Deno.pid}.json.0a1b2c3d.tmp`,
        `api-${Deno.pid}.json`,
        "notes.txt",
      ]);
    });
  },
});

Deno.test("files: root's runtime directory is /run/k8stun on Linux and /var/run/k8stun on macOS (no /run, read-only root)", () => {
  const none = () => undefined;
  assertEquals(runtimeDir(none, 0, "linux"), "/run/k8stun");
  assertEquals(runtimeDir(none, 0, "darwin"), "/var/run/k8stun");
  assertEquals(runtimeDir((n) => n === "K8STUN_RUNTIME_DIR" ? "/tmp/x" : undefined, 0), "/tmp/x");
});

Deno.test({
  name:
    "files: with its journal gone (a reboot), cleanup takes out k8stun's DNS files — resolv.conf lines, macOS resolver files — and nothing of anyone else's",
  ignore,
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      const runtime = `${dir}/run`;
      await Deno.mkdir(runtime, { mode: 0o700 });
      const resolvConf = `${dir}/resolv.conf`;
      const resolverDir = `${dir}/resolver`;
      await Deno.mkdir(resolverDir);
      const original = "nameserver 10.0.0.2\nsearch lan\n";
      await Deno.writeTextFile(resolvConf, forwardResolvConf(original, "127.0.0.153"));
      await Deno.writeTextFile(
        `${resolverDir}/cluster.local`,
        resolverFile({ address: "127.0.0.1", port: 53 }),
      );
      await Deno.writeTextFile(`${resolverDir}/corp.example`, "nameserver 10.9.9.9\n");

      const linux = await cleanUpAfterDeadRuns(undefined, runtime, {
        os: "linux",
        path: resolvConf,
        resolverDir,
      });
      assertMatch(linux.messages.join("\n"), /resolv\.conf: k8stun's lines removed/);
      assertEquals(await Deno.readTextFile(resolvConf), original);

      const mac = await cleanUpAfterDeadRuns(undefined, runtime, {
        os: "darwin",
        path: resolvConf,
        resolverDir,
      });
      assertMatch(mac.messages.join("\n"), /cluster\.local: removed/);
      assertEquals([...Deno.readDirSync(resolverDir)].map((e) => e.name), ["corp.example"]);
      const again = await cleanUpAfterDeadRuns(undefined, runtime, {
        os: "darwin",
        path: resolvConf,
        resolverDir,
      });
      assertEquals(again.messages, [], "nothing left to do");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
