/**
 * Hostile plugin files against `k8stun plugins list`, `plugins check` and `run` (as `demo`), all
 * as root inside a lab namespace — whose /etc/resolv.conf is the lab's own file, so an attack that
 * gets through changes nothing on the machine. A plugin may run only with the permissions it
 * declares; a DNS-mode plugin, which cannot run isolated, loads only with `--allow-unisolated`.
 */
import { assert, assertEquals, assertMatch } from "../assert.ts";
import { Lab, labUnavailable } from "../lab/lab.ts";
import { DEMO_RESOLV as RESOLV, MAIN, startDemo } from "./harness.ts";

const ignore = labUnavailable() !== undefined;

/**
 * A resolver plugin declaring no permissions that, at load, tries to rewrite /etc/resolv.conf and
 * to copy /etc/shadow into `marker`; then, in setup, reads /etc/shadow again without catching.
 */
function thief(marker: string): string {
  return `
try { Deno.writeTextFileSync("/etc/resolv.conf", "nameserver 6.6.6.6 # thief\\n"); } catch {}
try { Deno.writeTextFileSync(${
    JSON.stringify(marker)
  }, Deno.readTextFileSync("/etc/shadow")); } catch {}
export const plugin = {
  name: "thief", version: "1", apiVersion: 1, kinds: ["resolver"],
  setup() {
    const shadow = Deno.readTextFileSync("/etc/shadow");
    return { resolvers: [{ name: "thief", resolveName: () => shadow ? null : null }] };
  },
};
`;
}

/** A DNS-mode plugin that rewrites /etc/resolv.conf as soon as it is set up. */
const EVIL_DNS = `
export const plugin = {
  name: "evil-dns", version: "1", apiVersion: 1, kinds: ["dns-mode"],
  setup() {
    Deno.writeTextFileSync("/etc/resolv.conf", "nameserver 6.6.6.6 # evil-dns\\n");
    return { dnsModes: [{ name: "evil", apply: async () => {}, revert: async () => {} }] };
  },
};
`;

async function k8stun(lab: Lab, ...args: string[]) {
  return await lab.run(Deno.execPath(), ["run", "-A", MAIN, ...args], { timeoutMs: 60_000 });
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

Deno.test({
  name:
    "adversarial plugins: plugins list and plugins check run third-party code without permissions",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using lab = await Lab.create({ resolvConf: RESOLV });
    const dir = `${lab.dir}/plugins`;
    await Deno.mkdir(dir);
    const marker = `${lab.dir}/stolen`;
    await Deno.writeTextFile(`${dir}/thief.ts`, thief(marker));

    const list = await k8stun(lab, "plugins", "list", "--plugin-dir", dir);
    assertEquals(await Deno.readTextFile(lab.resolvConfPath), RESOLV, "list: resolv.conf kept");
    assertEquals(await exists(marker), false, "list: /etc/shadow was not read");
    assertMatch(
      list.stderr,
      /plugin not loaded: .*thief\.ts: plugin "thief" setup failed: .*(NotCapable|read)/,
    );
    assert(!/^\d+\s+thief\s/m.test(list.stdout), list.stdout);

    for (const target of [dir, `${dir}/thief.ts`]) {
      const check = await k8stun(lab, "plugins", "check", target);
      assertEquals(await Deno.readTextFile(lab.resolvConfPath), RESOLV, `check ${target}`);
      assertEquals(await exists(marker), false, `check ${target}: /etc/shadow was not read`);
      assertMatch(check.stderr, /error .*thief\.ts: plugin "thief" setup failed/);
      assertEquals(check.code, 1);
    }
  },
});

Deno.test({
  name:
    "adversarial plugins: a DNS-mode plugin is refused by plugins check and run unless allowed by name",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using lab = await Lab.create({ resolvConf: RESOLV });
    const dir = `${lab.dir}/plugins`;
    await Deno.mkdir(dir);
    await Deno.writeTextFile(`${dir}/evil-dns.ts`, EVIL_DNS);

    const run = await startDemo(lab, ["--dns-mode", "disabled", "--plugin-dir", dir]);
    assertEquals(await Deno.readTextFile(lab.resolvConfPath), RESOLV, "run: resolv.conf kept");
    await run.waitForOutput(/plugin not loaded: .*"evil-dns" provides a DNS mode/, 1_000);
    run.signal("SIGTERM");
    await run.status;

    const check = await k8stun(lab, "plugins", "check", dir);
    assertMatch(
      check.stderr,
      /error .*evil-dns\.ts: plugin "evil-dns" provides a DNS mode, .* --allow-unisolated evil-dns/,
    );
    assertEquals(await Deno.readTextFile(lab.resolvConfPath), RESOLV);

    const allowed = await k8stun(
      lab,
      "plugins",
      "check",
      "--allow-unisolated",
      "evil-dns",
      `${dir}/evil-dns.ts`,
    );
    assertMatch(allowed.stdout, /ok\s+evil-dns 1/);
    assertMatch(allowed.stderr, /warning: plugin "evil-dns" .* runs in-process with all of k8stun/);
  },
});
