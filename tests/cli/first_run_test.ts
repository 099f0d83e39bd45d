/**
 * First runs that start together — tests in parallel, `sudo bin/k8stun run` beside
 * `bin/k8stun status` — fill the checkout's shared directories once and all start: `tools/deno`
 * installs Deno once, `bin/k8stun` fills the module cache once (tools/once.sh). Before, each run
 * filled them, and one run's `chmod -R` failed on the files another run's download was still
 * renaming: that launcher exited 1 (seen in CI).
 *
 * The fills are stood in for by scripts that write and remove a scratch directory slowly, so the
 * tests run offline and the overlap is certain.
 */
import { assert, assertEquals } from "../assert.ts";
import { copyCheckout } from "./checkout_copy.ts";

const SOURCE = new URL("../../", import.meta.url).pathname;
const TOGETHER = 6;

/** A slow fill: a directory of files that appears and disappears, as a download's does. */
const SLOW_FILL = `mkdir "$scratch"
i=0; while [ $i -lt 200 ]; do : >"$scratch/$i"; i=$((i + 1)); done
sleep 1
rm -rf "$scratch"`;

interface Finished {
  code: number;
  stderr: string;
}

async function startTogether(
  command: string,
  args: string[],
  env: Record<string, string>,
): Promise<Finished[]> {
  return await Promise.all(
    Array.from({ length: TOGETHER }, async () => {
      const out = await new Deno.Command(command, {
        args,
        env,
        stdin: "null",
        stdout: "null",
        stderr: "piped",
      }).output();
      return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
    }),
  );
}

/** Runs that found the fill under way said so, rather than waiting silently. */
function assertSomeWaited(runs: Finished[]): void {
  const waited = runs.filter((run) => /waiting for another first run to finish/.test(run.stderr));
  assert(waited.length > 0, runs.map((run) => run.stderr).join("\n"));
}

async function lines(path: string): Promise<string[]> {
  return (await Deno.readTextFile(path).catch(() => "")).split("\n").filter((l) => l !== "");
}

Deno.test({
  name: "launcher: first runs started together fill the module cache once, and all of them start",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using checkout = await copyCheckout();
    const root = checkout.root;
    const cache = `${root}/.tools/deno-dir`;
    for await (const entry of Deno.readDir(cache)) {
      if (entry.name.startsWith(".complete-")) await Deno.remove(`${cache}/${entry.name}`);
    }
    // The copy's tools/deno logs each `cache` and fills slowly before the real one runs.
    const fills = `${checkout.scratch}/fills.log`;
    await Deno.rename(`${root}/tools/deno`, `${root}/tools/deno.real`);
    await Deno.writeTextFile(
      `${root}/tools/deno`,
      `#!/bin/sh
set -eu
if [ "$1" = cache ]; then
  echo $$ >>"${fills}"
  scratch="$DENO_DIR/npm/fill-$$.tmp"
  ${SLOW_FILL}
fi
exec "$(dirname "$0")/deno.real" "$@"
`,
      { mode: 0o755 },
    );

    const runs = await startTogether(`${root}/bin/k8stun`, ["--version"], {});
    for (const run of runs) assertEquals(run.code, 0, run.stderr);
    assertEquals((await lines(fills)).length, 1, "the module cache was filled more than once");
    assertSomeWaited(runs);
    const markers = [...Deno.readDirSync(cache)].filter((e) => /^\.complete-\d+$/.test(e.name));
    assertEquals(markers.length, 1);
  },
});

/** A directory of the commands tools/deno needs, linked from the system's, `flock` left out. */
async function pathWithoutFlock(dir: string): Promise<string> {
  await Deno.mkdir(dir);
  const needed = [
    "sh",
    "dirname",
    "mkdir",
    "cat",
    "ps",
    "rm",
    "sleep",
    "touch",
    "chmod",
    "ln",
    "head",
    "grep",
  ];
  for (const name of needed) {
    const which = await new Deno.Command("sh", { args: ["-c", `command -v ${name}`] }).output();
    const target = new TextDecoder().decode(which.stdout).trim();
    assert(which.success && target.startsWith("/"), `${name} not found`);
    await Deno.symlink(target, `${dir}/${name}`);
  }
  return dir;
}

/**
 * tools/deno and once.sh copied to `scratch`, with an npm that stands in: it logs each install,
 * fills slowly, then links the running Deno where the real package puts its binary. Returns the
 * environment to run it with (flock(1) on PATH or not) and the install log.
 */
async function stagedInstall(scratch: string, withFlock: boolean) {
  await Deno.mkdir(`${scratch}/tools`);
  for (const file of ["deno", "once.sh"]) {
    await Deno.copyFile(`${SOURCE}tools/${file}`, `${scratch}/tools/${file}`);
  }
  await Deno.chmod(`${scratch}/tools/deno`, 0o755);
  const installs = `${scratch}/installs.log`;
  const fake = `${scratch}/fake-bin`;
  await Deno.mkdir(fake);
  await Deno.writeTextFile(
    `${fake}/npm`,
    `#!/bin/sh
set -eu
echo $$ >>"${installs}"
scratch="$PWD/fill-$$.tmp"
${SLOW_FILL}
mkdir -p node_modules/deno
ln -s "${Deno.execPath()}" node_modules/deno/deno
`,
    { mode: 0o755 },
  );
  const system = withFlock
    ? "/usr/local/bin:/usr/bin:/bin"
    : await pathWithoutFlock(`${scratch}/system-bin`);
  return { env: { PATH: `${fake}:${system}` }, installs };
}

for (const lock of ["flock(1)", "a lock directory (no flock(1), as on macOS)"]) {
  Deno.test(`tools/deno: first runs started together install Deno once, locked by ${lock}`, async () => {
    const scratch = await Deno.makeTempDir({ prefix: "k8stun-first-run-" });
    try {
      const { env, installs } = await stagedInstall(scratch, lock === "flock(1)");
      const runs = await startTogether(`${scratch}/tools/deno`, ["--version"], env);
      for (const run of runs) assertEquals(run.code, 0, run.stderr);
      assertEquals((await lines(installs)).length, 1, "Deno was installed more than once");
      assertSomeWaited(runs);
    } finally {
      await Deno.remove(scratch, { recursive: true });
    }
  });
}

Deno.test("tools/deno: a lock directory left by a run that was killed (its pid gone) is taken over", async () => {
  const scratch = await Deno.makeTempDir({ prefix: "k8stun-first-run-" });
  try {
    const { env, installs } = await stagedInstall(scratch, false);
    const version =
      /^DENO_VERSION=(\S+)$/m.exec(await Deno.readTextFile(`${SOURCE}tools/deno`))![1];
    const lock = `${scratch}/.tools/deno-${version}/.complete.lock.d`;
    await Deno.mkdir(lock, { recursive: true });
    const gone = new Deno.Command("true").spawn();
    await gone.status;
    await Deno.writeTextFile(`${lock}/pid`, `${gone.pid}\n`);
    const out = await new Deno.Command(`${scratch}/tools/deno`, {
      args: ["--version"],
      env,
      stdout: "null",
      stderr: "piped",
    }).output();
    assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
    assertEquals((await lines(installs)).length, 1);
  } finally {
    await Deno.remove(scratch, { recursive: true });
  }
});
