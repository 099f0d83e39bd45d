/** `k8stun plugins list|check` through the real launcher, as a new user first meets them. */
import { assert, assertEquals, assertMatch } from "../assert.ts";
import { pluginDir, pluginSource } from "../plugins/support.ts";
import { k8stun } from "./launcher.ts";

Deno.test("cli: bin/k8stun plugins check FILE loads that one file and reports it", async () => {
  await using dir = await pluginDir({
    "one.ts": pluginSource(
      "one",
      "return { resolvers: [{ name: 'one', resolveName: () => null }] };",
    ),
    "broken.ts": "export const plugin = {",
  });
  const ok = await k8stun(["plugins", "check", `${dir.path}/one.ts`]);
  assertEquals(ok.code, 0, ok.stderr);
  assertMatch(ok.stdout, /^ok\s+one 0\.0\.1 \(resolver, dialer; priority 50\) — .*\/one\.ts$/m);
  assert(!ok.stdout.includes("broken"), ok.stdout);
  const bad = await k8stun(["plugins", "check", `${dir.path}/broken.ts`]);
  assertEquals(bad.code, 1);
  assertMatch(bad.stderr, /broken\.ts/);
});

Deno.test("cli: plugins list shows every built-in with its state, the SOCKS5 upstream too", async () => {
  await using dir = await pluginDir({});
  const out = await k8stun(["plugins", "list", "--plugin-dir", dir.path]);
  assertEquals(out.code, 0, out.stderr);
  const rows = out.stdout.split("\n").filter((l) => /^(\d+|-)\s/.test(l)).map((l) => {
    const cells = l.split(/\s+/);
    return `${cells[1]} ${cells[5]}`;
  });
  assertEquals(rows, [
    "socks-upstream inactive",
    "dns-modes active",
    "kubernetes active",
    "portforward active",
    "direct active",
  ]);
  assertMatch(out.stdout, /socks-upstream is inactive: only with --socks-upstream HOST:PORT/);
  const json = JSON.parse(
    (await k8stun(["plugins", "list", "--plugin-dir", dir.path, "--json"]))
      .stdout,
  );
  assertEquals(
    json.plugins.map((p: { name: string; state: string }) => `${p.name} ${p.state}`),
    rows,
  );
});

Deno.test("cli: a plugin without a plugin export gets the same message in check as in run", async () => {
  await using dir = await pluginDir({ "nothing.ts": "export const notAPlugin = 1;\n" });
  const check = await k8stun(["plugins", "check", `${dir.path}/nothing.ts`]);
  assertEquals(check.code, 1);
  assertMatch(check.stderr, /nothing\.ts: missing export "plugin"/);
  // run and list load plugins the same way; list shows the failure without starting a tunnel.
  const list = await k8stun(["plugins", "list", "--plugin-dir", dir.path]);
  assertMatch(list.stderr, /plugin not loaded: .*nothing\.ts: missing export "plugin"/);
});

Deno.test("cli: plugin load errors go to stderr; stdout keeps only the listing", async () => {
  await using dir = await pluginDir({
    "bare.ts": `import pad from "left-pad";\n${pluginSource("bare", "pad; return {};")}`,
  });
  const list = await k8stun(["plugins", "list", "--plugin-dir", dir.path]);
  assertEquals(list.code, 0, list.stderr);
  assert(!/bare|error/.test(list.stdout), list.stdout);
  assertMatch(list.stderr, /bare\.ts.*left-pad/);
  // The fix the message suggests is k8stun's own command.
  assertMatch(list.stderr, /k8stun plugins bundle/);
  const check = await k8stun(["plugins", "check", dir.path]);
  assertEquals(check.code, 1);
  assertEquals(check.stdout, "");
  assertMatch(check.stderr, /^error .*bare\.ts/m);
});

Deno.test("cli: properties a plugin passes to ctx.log show in text logs", async () => {
  await using dir = await pluginDir({
    "chatty.ts": pluginSource(
      "chatty",
      "ctx.log.info('set up', { pod: 'api-0', port: 8080 }); return {};",
    ),
  });
  const out = await k8stun(["plugins", "check", `${dir.path}/chatty.ts`]);
  assertEquals(out.code, 0, out.stderr);
  assertMatch(out.stderr, /\[INF\] set up pod=api-0 port=8080$/m);
});
