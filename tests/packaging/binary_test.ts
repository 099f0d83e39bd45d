/**
 * The compiled binary and the source launcher are the same program: same commands and flags, same
 * permission flags. Compiling needs Deno's denort runtime (DENORT_BIN); without it the comparison
 * of `--help` is skipped with a one-line reason.
 */
import { assertEquals } from "../assert.ts";

const root = new URL("../../", import.meta.url).pathname;
const denort = Deno.env.get("DENORT_BIN");

async function help(command: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(command, { args, stdout: "piped", stderr: "piped" }).output();
  return new TextDecoder().decode(out.stdout);
}

Deno.test("packaging: the launcher and the compile task grant the same permission flags", async () => {
  const launcher = await Deno.readTextFile(`${root}bin/k8stun`);
  const compile = await Deno.readTextFile(`${root}tools/compile.ts`);
  const workflow = await Deno.readTextFile(`${root}.github/workflows/release.yml`);
  // FFI already means full access (docs/platform.md §1.1), so every entry point uses --allow-all.
  assertEquals(/run --allow-all/.test(launcher), true);
  assertEquals(/"--allow-all"/.test(compile), true);
  assertEquals(/compile --allow-all/.test(workflow), true);
  for (const text of [compile, workflow]) {
    assertEquals(text.includes("core/net/packet_loop/worker.ts"), true);
  }
});

Deno.test({
  name: "packaging: the compiled binary accepts the same commands and flags as the launcher",
  ignore: denort === undefined,
  async fn() {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", `${root}tools/compile.ts`],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assertEquals(out.success, true, new TextDecoder().decode(out.stderr));
    const binary = new TextDecoder().decode(out.stdout).match(/wrote (\S+)/)![1];
    for (
      const args of [["--help"], ["run", "--help"], ["proxy", "--help"], ["plugins", "--help"]]
    ) {
      assertEquals(await help(binary, args), await help(`${root}bin/k8stun`, args));
    }
  },
});

if (denort === undefined) {
  console.log(
    "packaging: compiled-binary comparison skipped — DENORT_BIN is not set (denort cannot be downloaded here)",
  );
}
