/** `run`/`demo` flags are checked while parsing, before anything starts or changes. */
import { assert, assertEquals, assertMatch, assertThrows } from "../assert.ts";
import { parseNamespaces, parseVipBaseFlag } from "../../cli/run_options.ts";
import { k8stun } from "./launcher.ts";

// A kubeconfig that does not exist: were the flag checked after start-up began, the error
// would name the kubeconfig instead of the flag.
const NO_KUBECONFIG = ["--kubeconfig", "/nonexistent/kubeconfig"];

Deno.test("cli: --vip-base garbage is rejected at parse time, naming the flag", async () => {
  const out = await k8stun(["run", "--vip-base", "garbage", ...NO_KUBECONFIG]);
  assertEquals(out.code, 1);
  assertMatch(out.stderr, /--vip-base "garbage" is not an IPv4 address or CIDR/);
  assert(!out.stderr.includes("kubeconfig"), out.stderr);
});

Deno.test("cli: --vip-base in public address space is accepted with a warning", async () => {
  const out = await k8stun(["run", "--vip-base", "8.8.8.0/24", ...NO_KUBECONFIG]);
  assertMatch(out.stderr, /--vip-base 8\.8\.8\.0\/24 is public address space/);
  const quiet = await k8stun(["run", "--vip-base", "10.99.0.0/16", ...NO_KUBECONFIG]);
  assert(!quiet.stderr.includes("public address space"), quiet.stderr);
  assertMatch(quiet.stderr, /no kubeconfig found/);
});

Deno.test("cli: -n takes only namespace names", async () => {
  const out = await k8stun(["run", "-n", "demo,Not_A_Namespace", ...NO_KUBECONFIG]);
  assertEquals(out.code, 1);
  assertMatch(out.stderr, /"Not_A_Namespace" is not a namespace name/);
});

Deno.test("run options: -n and --vip-base parsers", () => {
  assertEquals(parseNamespaces("demo, prod", ["a"]), ["a", "demo", "prod"]);
  assertThrows(() => parseNamespaces("a.b"));
  assertThrows(() => parseNamespaces("-x"));
  assertEquals(parseVipBaseFlag(" 10.9.0.0/16 "), "10.9.0.0/16");
  assertThrows(() => parseVipBaseFlag("10.9.0.0/40"));
  assertThrows(() => parseVipBaseFlag("300.1.1.1"));
});

Deno.test("cli: a bad listen address is rejected at parse time, naming the flag", async () => {
  for (const args of [["run", "--socks", "nope:x"], ["proxy", "--listen-socks", "bad:port"]]) {
    const out = await k8stun([...args, ...NO_KUBECONFIG]);
    assertEquals(out.code, 1);
    assertMatch(out.stderr, new RegExp(`${args[1]} .*is not HOST:PORT`), out.stderr);
    assert(!out.stderr.includes("kubeconfig"), out.stderr);
  }
});
