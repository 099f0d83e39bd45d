import { assert, assertEquals } from "../assert.ts";
import { buildProgram, normaliseArgs } from "../../cli/main.ts";

Deno.test("cli: an unknown flag exits non-zero with a message naming it", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("../../cli/main.ts", import.meta.url).pathname, "--bogus-flag"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert(!out.success);
  assert(new TextDecoder().decode(out.stderr).includes("unknown option '--bogus-flag'"));
});

Deno.test("cli: a first argument starting with - is treated as run (drop-in for the Rust k8stun)", () => {
  const program = buildProgram();
  assertEquals(normaliseArgs(["-n", "demo"], program), ["run", "-n", "demo"]);
  assertEquals(normaliseArgs(["--help"], program), ["--help"]);
  assertEquals(normaliseArgs(["proxy"], program), ["proxy"]);
});

Deno.test("cli: --version names k8stun and the Deno version", () => {
  const program = buildProgram();
  assert(String(program.version()).startsWith("k8stun "));
  assert(String(program.version()).includes(Deno.version.deno));
});

Deno.test("cli: --help lists every command", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("../../cli/main.ts", import.meta.url).pathname, "--help"],
    stdout: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  for (const command of ["run", "demo", "proxy", "sim", "status", "plugins", "cleanup"]) {
    assert(new RegExp(`\\n  ${command}\\b`).test(text), `${command} missing from --help:\n${text}`);
  }
});
