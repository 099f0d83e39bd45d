/** Global flags (`-l`, `--lib-log-level`, `--log-format`, `--log-source`) work before any command. */
import { assert, assertEquals, assertMatch } from "../assert.ts";
import { buildProgram, normaliseArgs } from "../../cli/main.ts";
import { k8stun } from "./launcher.ts";

Deno.test("cli: k8stun -l debug status runs status, not run", async () => {
  const out = await k8stun(["-l", "debug", "status", "--url", "http://127.0.0.1:1"]);
  assertEquals(out.code, 1, out.stderr);
  assertMatch(out.stderr, /cannot reach the k8stun API at http:\/\/127\.0\.0\.1:1/);
  assert(!out.stderr.includes("for 'run'"), out.stderr);
});

Deno.test("cli: k8stun --log-format json sim --help shows sim's help", async () => {
  const out = await k8stun(["--log-format", "json", "sim", "--help"]);
  assertEquals(out.code, 0, out.stderr);
  assertMatch(out.stdout, /^Usage: k8stun sim /);
});

Deno.test("cli: -l warning is a level, as --lib-log-level's default 'warn' shows", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const out = await k8stun(["-l", "warning", "plugins", "list", "--plugin-dir", dir]);
    assertEquals(out.code, 0, out.stderr);
    const help = await k8stun(["--help"]);
    assertMatch(help.stdout, /--lib-log-level <level>[^]*\(default: warn\)/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli: without a command, flags (global ones included) are run's", () => {
  const program = buildProgram();
  assertEquals(normaliseArgs(["-n", "demo"], program), ["run", "-n", "demo"]);
  assertEquals(normaliseArgs(["-l", "debug", "-n", "demo"], program), [
    "run",
    "-l",
    "debug",
    "-n",
    "demo",
  ]);
  assertEquals(normaliseArgs(["-ldebug", "--log-format=json", "status"], program), [
    "-ldebug",
    "--log-format=json",
    "status",
  ]);
  assertEquals(normaliseArgs(["--log-source", "proxy"], program), ["--log-source", "proxy"]);
  assertEquals(normaliseArgs(["-l", "debug", "--help"], program), ["-l", "debug", "--help"]);
  assertEquals(normaliseArgs(["proxy"], program), ["proxy"]);
});

Deno.test("cli: no command prints Node's punycode deprecation warning, in text or JSON logs", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (const format of ["text", "json"]) {
      const out = await k8stun(["--log-format", format, "plugins", "list", "--plugin-dir", dir]);
      assertEquals(out.code, 0, out.stderr);
      assert(!/punycode|DEP0040/.test(out.stderr), `${format}: ${out.stderr}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
