/**
 * Hostile plugin files and folders, as root: imports that leave the plugin's folder (by `..` or a
 * symlink), plugin code that someone else can write or owns, and symlinked entries. Each is
 * refused naming the path and the reason — never loaded, never skipped silently.
 */
import { assert, assertEquals, assertMatch } from "../assert.ts";
import { loadPlugins } from "../../core/plugins/loader.ts";
import { fakeCluster, pluginDir, pluginSource } from "../plugins/support.ts";

const cluster = fakeCluster([]);
const ignore = Deno.uid() !== 0;
const GOOD = pluginSource(
  "good",
  "return { resolvers: [{ name: 'good', resolveName: () => null }] };",
);
const NOBODY = 65534;

async function load(dir: string) {
  const result = await loadPlugins([], [dir], { cluster, isolate: true });
  for (const p of result.plugins) p.close?.();
  return result;
}

Deno.test("adversarial plugins: relative imports that leave the plugin's folder are refused with the path", async () => {
  await using outside = await pluginDir({ "secret.ts": "export const secret = 1;\n" });
  await using dir = await pluginDir({
    "dotdot/mod.ts": `import "../../../../../../../../../../etc/passwd";\n${GOOD}`,
    "sibling/mod.ts": `import { secret } from "../../${
      outside.path.split("/").pop()
    }/secret.ts";\nconsole.log(secret);\n${GOOD.replace('"good"', '"sibling"')}`,
    "linked/mod.ts": `import { secret } from "./lib.ts";\nconsole.log(secret);\n${
      GOOD.replace('"good"', '"linked"')
    }`,
  });
  await Deno.symlink(`${outside.path}/secret.ts`, `${dir.path}/linked/lib.ts`);
  const { plugins, failures } = await load(dir.path);
  assertEquals(plugins.map((p) => p.name), []);
  const message = (name: string) => failures.find((f) => f.source.includes(`/${name}/`))?.message;
  assertMatch(
    message("dotdot") ?? "",
    /dotdot\/mod\.ts:1: cannot import ".*\/etc\/passwd" at run time — it resolves to \/etc\/passwd, outside the plugin's folder .*\/dotdot; a plugin may import only files inside its own folder/,
  );
  assertMatch(
    message("sibling") ?? "",
    new RegExp(`it resolves to ${outside.path}/secret\\.ts, outside the plugin's folder`),
  );
  assertMatch(
    message("linked") ?? "",
    new RegExp(`"\\./lib\\.ts" .* it resolves to ${outside.path}/secret\\.ts, outside`),
  );
});

Deno.test({
  name: "adversarial plugins: as root, plugin code that others can write or own is refused",
  ignore,
  async fn() {
    await using writableDir = await pluginDir({ "good.ts": GOOD });
    await Deno.chmod(writableDir.path, 0o777);
    const dirResult = await load(writableDir.path);
    assertEquals(dirResult.plugins, []);
    assertEquals(dirResult.failures.length, 1);
    assertMatch(
      dirResult.failures[0].message,
      new RegExp(
        `^${writableDir.path}: refusing to run plugin code as root: this plugin directory is ` +
          `writable by group and others \\(mode 0777\\).*fix it with \`chmod go-w ${writableDir.path}\``,
      ),
    );

    await using writableFile = await pluginDir({ "good.ts": GOOD });
    await Deno.chmod(`${writableFile.path}/good.ts`, 0o646);
    const fileResult = await load(writableFile.path);
    assertEquals(fileResult.plugins, []);
    assertMatch(
      fileResult.failures[0]?.message ?? "",
      /good\.ts: refusing to run plugin code as root: this plugin file is writable by others \(mode 0646\).*chmod go-w/,
    );

    await using foreign = await pluginDir({ "theirs/mod.ts": GOOD });
    await Deno.chown(`${foreign.path}/theirs`, NOBODY, NOBODY);
    const ownerResult = await load(foreign.path);
    assertEquals(ownerResult.plugins, []);
    assertMatch(
      ownerResult.failures[0]?.message ?? "",
      new RegExp(
        `^${foreign.path}/theirs: refusing to run plugin code as root: this plugin folder is ` +
          `owned by uid ${NOBODY}, not root.*sudo chown root ${foreign.path}/theirs`,
      ),
    );
  },
});

Deno.test({
  name:
    "adversarial plugins: a symlinked plugin is followed and its target checked; a broken one is reported",
  ignore,
  async fn() {
    await using elsewhere = await pluginDir({ "good.ts": GOOD, "loose.ts": GOOD });
    await Deno.chmod(`${elsewhere.path}/loose.ts`, 0o666);
    await using dir = await pluginDir({});
    await Deno.symlink(`${elsewhere.path}/good.ts`, `${dir.path}/good.ts`);
    await Deno.symlink(`${elsewhere.path}/loose.ts`, `${dir.path}/loose.ts`);
    await Deno.symlink(`${elsewhere.path}/gone.ts`, `${dir.path}/gone.ts`);
    const { plugins, failures } = await load(dir.path);
    assertEquals(plugins.map((p) => p.name), ["good"]);
    const message = (name: string) => failures.find((f) => f.source.endsWith(name))?.message;
    assertMatch(
      message("/loose.ts") ?? "",
      new RegExp(`^${elsewhere.path}/loose\\.ts: refusing .* writable by group and others`),
    );
    assertMatch(message("/gone.ts") ?? "", /gone\.ts: cannot read plugin file: .*No such file/);
    assert(failures.length === 2, JSON.stringify(failures));
  },
});
