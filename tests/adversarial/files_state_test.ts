/**
 * The VIP state k8stun keeps for the user who ran it under sudo (SUDO_UID/SUDO_GID = 65534,
 * nobody): created in their home as them, and never written through a link they planted —
 * a state file or directory pointing at a passwd-like file elsewhere leaves that file alone,
 * k8stun says why and keeps running. All in temporary directories and lab namespaces.
 */
import { assert, assertEquals, assertMatch } from "../assert.ts";
import { parseVipBase, VipPool } from "../../core/vip.ts";
import { openFsIdentity } from "../../ffi/linux/fs_identity.ts";
import { Lab, labUnavailable } from "../lab/lab.ts";
import { DEMO_RESOLV, MAIN } from "./harness.ts";

const NOBODY = 65534;
/** Deno's cache, which would otherwise move with the fake HOME. */
const DENO_DIR = Deno.env.get("DENO_DIR") ?? `${Deno.env.get("HOME")}/.cache/deno`;
const PASSWD = "root:x:0:0:root:/root:/bin/bash\n";

/** A directory nobody can enter, with a "home" owned by nobody and a root-owned "etc/passwd". */
async function fakeSystem() {
  const base = await Deno.makeTempDir({ prefix: "k8stun-files-" });
  await Deno.chmod(base, 0o755);
  const home = `${base}/home`;
  await Deno.mkdir(home, { mode: 0o755 });
  await Deno.chown(home, NOBODY, NOBODY);
  await Deno.mkdir(`${base}/etc`, { mode: 0o755 });
  await Deno.writeTextFile(`${base}/etc/passwd`, PASSWD, { mode: 0o644 });
  return {
    base,
    home,
    passwd: `${base}/etc/passwd`,
    /** Creates a link as the user would (owned by nobody). */
    async userLink(target: string, path: string) {
      await Deno.symlink(target, path);
      const chown = await new Deno.Command("chown", { args: ["-h", `${NOBODY}:${NOBODY}`, path] })
        .output();
      assert(chown.success, "chown -h of the link");
    },
    async [Symbol.asyncDispose]() {
      await Deno.remove(base, { recursive: true });
    },
  };
}

for (const [how, withOwner] of [["setfsuid", openFsIdentity()], ["chown", undefined]] as const) {
  Deno.test({
    name:
      `files: a VIP state file that links to a passwd-like file is refused with one warning (${how})`,
    ignore: Deno.uid() !== 0,
    async fn() {
      await using system = await fakeSystem();
      const dir = `${system.home}/.local/state/k8stun`;
      await Deno.mkdir(dir, { recursive: true });
      await Deno.chown(`${system.home}/.local`, NOBODY, NOBODY);
      await Deno.chown(`${system.home}/.local/state`, NOBODY, NOBODY);
      await Deno.chown(dir, NOBODY, NOBODY);
      await system.userLink(system.passwd, `${dir}/vips-0123456789abcdef.json`);
      const warnings: string[] = [];
      const pool = new VipPool({
        network: parseVipBase(undefined),
        staleMs: 0,
        statePath: `${dir}/vips-0123456789abcdef.json`,
        stateRoot: system.home,
        stateOwner: { uid: NOBODY, gid: NOBODY },
        withOwner,
        warn: (m) => warnings.push(m),
      });
      for (let i = 0; i < 3; i++) {
        const vip = pool.allocate({ type: "service", namespace: "demo", name: `s${i}` });
        assertMatch(vip, /^198\.18\.0\.\d+$/, "VIPs still work for this run");
      }
      assertEquals(await Deno.readTextFile(system.passwd), PASSWD, "the link's target untouched");
      assertEquals(warnings.length, 1, warnings.join("\n"));
      assertMatch(warnings[0], /vips-0123456789abcdef\.json is a symbolic link/);
    },
  });
}

Deno.test({
  name: "files: under sudo, the demo's VIP state is created in the user's home, owned by them",
  ignore: labUnavailable() !== undefined,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using system = await fakeSystem();
    await using lab = await Lab.create({ resolvConf: DEMO_RESOLV });
    const k8stun = lab.spawn(Deno.execPath(), ["run", "-A", MAIN, "demo"], {
      env: {
        DENO_DIR,
        SUDO_UID: `${NOBODY}`,
        SUDO_GID: `${NOBODY}`,
        HOME: system.home,
        // As a user's session sets it; none of it exists yet.
        XDG_STATE_HOME: `${system.home}/.local/state`,
      },
    });
    await k8stun.waitForOutput(/k8stun is ready on (\S+)/, 60_000);
    const dir = `${system.home}/.local/state/k8stun`;
    const files = [...Deno.readDirSync(dir)].map((e) => `${dir}/${e.name}`);
    assertEquals(files.length, 1, files.join());
    assertMatch(files[0], /\/vips-[0-9a-f]{16}\.json$/);
    for (const path of [`${system.home}/.local`, `${system.home}/.local/state`, dir, files[0]]) {
      const info = Deno.lstatSync(path);
      assertEquals([path, info.uid, info.gid], [path, NOBODY, NOBODY]);
    }
    assertEquals(Deno.statSync(files[0]).mode! & 0o777, 0o600);
  },
});

Deno.test({
  name:
    "files: a VIP state directory linked elsewhere is refused with a warning; the demo still runs",
  ignore: labUnavailable() !== undefined,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using system = await fakeSystem();
    await using lab = await Lab.create({ resolvConf: DEMO_RESOLV });
    const stateHome = `${system.home}/state`;
    await Deno.mkdir(stateHome);
    await Deno.chown(stateHome, NOBODY, NOBODY);
    await system.userLink(`${system.base}/etc`, `${stateHome}/k8stun`);
    const k8stun = lab.spawn(Deno.execPath(), ["run", "-A", MAIN, "demo"], {
      env: {
        DENO_DIR,
        SUDO_UID: `${NOBODY}`,
        SUDO_GID: `${NOBODY}`,
        HOME: system.home,
        XDG_STATE_HOME: stateHome,
      },
    });
    await k8stun.waitForOutput(/k8stun is ready on (\S+)/, 60_000);
    const curl = await lab.run("curl", ["-s", "-m", "5", "http://hello.demo/"]);
    assertMatch(curl.stdout, /^hello from hello-/, curl.stderr);
    assertMatch(k8stun.output, /not using the VIP state file .*k8stun is a symbolic link/);
    assertEquals([...Deno.readDirSync(`${system.base}/etc`)].map((e) => e.name), ["passwd"]);
    assertEquals(await Deno.readTextFile(system.passwd), PASSWD);
    assert(Deno.lstatSync(`${stateHome}/k8stun`).isSymlink);
  },
});
