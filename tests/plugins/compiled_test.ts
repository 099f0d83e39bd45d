/**
 * The example plugins through the compiled binary (the path downloaded-binary users take). Needs
 * Deno's denort runtime to compile (DENORT_BIN); without it this is skipped with a one-line reason.
 */
import { assertEquals, assertMatch } from "../assert.ts";

const root = new URL("../../", import.meta.url).pathname;
const denort = Deno.env.get("DENORT_BIN");

Deno.test({
  name: "plugins: the compiled binary loads the example plugins from a plugin directory",
  ignore: denort === undefined,
  async fn() {
    const built = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", `${root}tools/compile.ts`],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assertEquals(built.success, true, new TextDecoder().decode(built.stderr));
    const binary = new TextDecoder().decode(built.stdout).match(/wrote (\S+)/)![1];
    const dir = await Deno.makeTempDir();
    try {
      for (const name of ["internal-names.ts", "logging-dialer.ts"]) {
        await Deno.copyFile(`${root}examples/plugins/${name}`, `${dir}/${name}`);
      }
      const out = await new Deno.Command(binary, {
        args: ["plugins", "check", dir],
        stdout: "piped",
      }).output();
      const text = new TextDecoder().decode(out.stdout);
      assertMatch(text, /ok\s+internal-names 1\.0\.0/);
      assertMatch(text, /ok\s+logging-dialer 1\.0\.0/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

if (denort === undefined) {
  console.log(
    "plugins: compiled-binary plugin test skipped — DENORT_BIN is not set (denort cannot be downloaded here)",
  );
}
