import { assert, assertEquals } from "../assert.ts";

Deno.test("compile: without DENORT_BIN the task exits non-zero with a one-line explanation", async () => {
  const env = { ...Deno.env.toObject() };
  delete env.DENORT_BIN;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("../../tools/compile.ts", import.meta.url).pathname],
    env,
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert(!out.success);
  const lines = new TextDecoder().decode(out.stderr).trim().split("\n");
  assertEquals(lines.length, 1);
  assert(lines[0].startsWith("k8stun compile: DENORT_BIN is not set"), lines[0]);
});
