import { assertEquals, assertMatch } from "../assert.ts";
import { rootCodeOwners } from "../../core/plugins/file_trust.ts";
import { loadPlugins } from "../../core/plugins/loader.ts";
import { fakeCluster, pluginDir, pluginSource } from "./support.ts";

const cluster = fakeCluster([]);
const GOOD = pluginSource(
  "good",
  "return { resolvers: [{ name: 'good', resolveName: () => null }] };",
);

Deno.test("plugins: as root, plugin code may be owned by root or the user who ran sudo; not root, no check", () => {
  const env = (vars: Record<string, string>) => (name: string) => vars[name];
  assertEquals(rootCodeOwners(0, env({ SUDO_UID: "1000" })), [0, 1000]);
  assertEquals(rootCodeOwners(0, env({})), [0]);
  assertEquals(rootCodeOwners(0, env({ SUDO_UID: "x" })), [0]);
  assertEquals(rootCodeOwners(1000, env({ SUDO_UID: "1000" })), undefined);
});

Deno.test({
  name:
    "plugins: a plugin folder owned by the sudo user loads; one owned by another user is refused",
  ignore: Deno.uid() !== 0,
  async fn() {
    await using dir = await pluginDir({ "mine/mod.ts": GOOD });
    await Deno.chown(`${dir.path}/mine`, 1000, 1000);
    await Deno.chown(`${dir.path}/mine/mod.ts`, 1000, 1000);
    const ok = await loadPlugins([], [dir.path], { cluster, codeOwners: [0, 1000] });
    assertEquals(ok.failures, []);
    assertEquals(ok.plugins.map((p) => p.name), ["good"]);
    const refused = await loadPlugins([], [dir.path], { cluster, codeOwners: [0, 1001] });
    assertMatch(
      refused.failures[0]?.message ?? "",
      /mine\/mod\.ts: refusing to run plugin code as root: this plugin file is owned by uid 1000, not root or uid 1001 \(who ran sudo\)/,
    );
  },
});

Deno.test("plugins: with isolation off, each third-party plugin loaded comes with a warning", async () => {
  await using dir = await pluginDir({ "good.ts": GOOD });
  const { plugins, warnings } = await loadPlugins([], [dir.path], { cluster, isolate: false });
  assertEquals(plugins.map((p) => p.name), ["good"]);
  assertEquals(warnings.length, 1);
  assertMatch(warnings[0], /good\.ts runs in-process with all of k8stun's permissions/);
});
