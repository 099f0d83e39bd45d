/**
 * A copy of this checkout in a world-readable scratch directory, for tests that run k8stun as
 * another user (`nobody`): the checkout itself may sit below a directory only its owner can enter
 * (a clone in a 0700 home or a `mktemp -d` directory).
 */

import { warmLauncher } from "./launcher.ts";

const SOURCE = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");

/** What the launcher and the program need: code, configuration, lockfile and tools. */
const ENTRIES = [
  "bin",
  "tools",
  "cli",
  "core",
  "plugins",
  "sim",
  "ffi",
  "mod.ts",
  "deno.json",
  "deno.lock",
];

/** The copy; removed when disposed. */
export interface CheckoutCopy extends AsyncDisposable {
  /** The scratch directory (world-readable), for the test's own files. */
  scratch: string;
  /** The copied checkout inside it. */
  root: string;
}

/**
 * Copies the checkout, the running Deno (as the pinned one `tools/deno` looks for) and the
 * launcher's module cache, so the copy needs no download. The cache is filled first: a copy
 * taken while another test's first run fills it would lack its marker and download again.
 */
export async function copyCheckout(): Promise<CheckoutCopy> {
  await warmLauncher();
  const scratch = await Deno.makeTempDir({ prefix: "k8stun-checkout-" });
  const root = `${scratch}/k8stun`;
  try {
    await Deno.mkdir(root);
    await run("cp", ["-a", ...ENTRIES.map((e) => `${SOURCE}/${e}`), root]);
    const version =
      /^DENO_VERSION=(\S+)$/m.exec(await Deno.readTextFile(`${SOURCE}/tools/deno`))![1];
    const tool = `${root}/.tools/deno-${version}`;
    await Deno.mkdir(`${tool}/node_modules/deno`, { recursive: true });
    await Deno.link(Deno.execPath(), `${tool}/node_modules/deno/deno`)
      .catch(() => Deno.copyFile(Deno.execPath(), `${tool}/node_modules/deno/deno`));
    await Deno.writeTextFile(`${tool}/.complete`, "");
    await copyLiveCache(`${SOURCE}/.tools/deno-dir`, `${root}/.tools/deno-dir`);
    await run("chmod", ["-R", "a+rX", scratch]);
  } catch (error) {
    await Deno.remove(scratch, { recursive: true });
    throw error;
  }
  return {
    scratch,
    root,
    [Symbol.asyncDispose]: () => Deno.remove(scratch, { recursive: true }),
  };
}

/** Deno's SQLite caches (and their journals): rebuilt on use, so a copy goes without them. */
const SQLITE_CACHE = /_cache_v\d+(-wal|-shm|-journal)?$/;

/**
 * Copies the launcher's module cache while other tests' runs may be writing it: Deno writes
 * files through temporary ones it renames, and its SQLite journals come and go, so `cp -a`
 * failed on a file listed and gone before it was copied. What vanishes meanwhile is skipped (a
 * temporary file, or a cache entry whose renamed version is listed too), and so are the SQLite
 * caches, which are not needed to run offline.
 */
async function copyLiveCache(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const entry of Deno.readDir(from)) {
    if (SQLITE_CACHE.test(entry.name)) continue;
    const [source, target] = [`${from}/${entry.name}`, `${to}/${entry.name}`];
    try {
      if (entry.isDirectory) await copyLiveCache(source, target);
      else if (entry.isSymlink) await Deno.symlink(await Deno.readLink(source), target);
      else await Deno.copyFile(source, target);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }
}

async function run(command: string, args: string[]): Promise<void> {
  const out = await new Deno.Command(command, { args, stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`${command} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
}
