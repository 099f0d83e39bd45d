import { assert, assertEquals, assertMatch, assertRejects } from "../assert.ts";
import { DialError } from "../../mod.ts";
import {
  collectParts,
  discoverPlugins,
  loadPluginFile,
  loadPlugins,
} from "../../core/plugins/loader.ts";
import { DialerChain } from "../../core/plugins/chain.ts";
import { Router } from "../../core/router.ts";
import { example, fakeCluster, pluginDir, pluginSource } from "./support.ts";
import { echoDialer, startEchoServer } from "./echo.ts";

const cluster = fakeCluster(["demo/hello", "staging/api"]);

Deno.test("plugins: the example resolver and logging dialer load from a directory; a custom name resolves and the wrapper relays bytes", async () => {
  await using dir = await pluginDir({
    "internal-names.ts": await example("internal-names.ts"),
    "logging-dialer.ts": await example("logging-dialer.ts"),
  });
  await using echo = await startEchoServer();
  const dialers = new DialerChain();
  const { plugins, failures } = await loadPlugins([echoDialer(echo.port)], [dir.path], {
    cluster,
    dialers,
    config: { "internal-names": { namespace: "staging" } },
  });
  assertEquals(failures, []);
  assertEquals(plugins.map((p) => `${p.name}:${p.priority}`), [
    "logging-dialer:10",
    "internal-names:50",
    "test-echo:100",
  ]);
  const parts = collectParts(plugins);
  const router = new Router({ resolvers: parts.resolvers, dialers: parts.dialers });
  const target = await router.resolve({
    name: "api.internal",
    port: 80,
    protocol: "tcp",
    front: "socks",
  });
  assertEquals(target, { kind: "service", namespace: "staging", name: "api", port: 80 });
  await assertRejects(
    () => router.resolve({ name: "nosuch.internal", port: 80, protocol: "tcp", front: "socks" }),
    /no resolver knows nosuch.internal/,
  );

  const duplex = await dialers.dialAfter("nobody-before", {
    kind: "host",
    host: "127.0.0.1",
    port: 1,
  }, {
    signal: new AbortController().signal,
    flow: { port: 1, protocol: "tcp", front: "socks" },
  }).catch(() => undefined);
  assertEquals(duplex, undefined, "dialAfter an unknown plugin still goes through the chain");

  const [wrapper] = parts.dialers;
  assertEquals(wrapper.name, "logging-dialer");
  const stream = await wrapper.dial({ kind: "host", host: "127.0.0.1", port: echo.port }, {
    signal: new AbortController().signal,
    flow: { port: echo.port, protocol: "tcp", front: "socks" },
  });
  const writer = stream.writable.getWriter();
  await writer.write(new TextEncoder().encode("ping through the wrapper"));
  await writer.close();
  const reply = await new Response(stream.readable).text();
  assertEquals(reply, "ping through the wrapper");
});

Deno.test("plugins: third-party code is imported from a data: URL, never from its file", async () => {
  await using dir = await pluginDir({
    "where.ts": pluginSource(
      "where",
      "return { resolvers: [{ name: 'where', resolveName: () => null }] };",
      "export const loadedFrom: string = import.meta.url;",
    ),
  });
  const { plugins } = await loadPlugins([], [dir.path], { cluster });
  assertEquals(plugins.length, 1);
  const loaded = await import(`data:application/javascript,export default 1`);
  assertEquals(loaded.default, 1);
  const linkSource = await Deno.readTextFile(
    new URL("../../core/plugins/loader.ts", import.meta.url),
  );
  const imports = [...linkSource.matchAll(/\bimport\(([^)]*)\)/g)].map((m) => m[1]);
  assertEquals(imports, ["linked.url"], "the loader's only dynamic import is the linked data: URL");
  const probe = await loadPluginFile(`${dir.path}/where.ts`, { cluster });
  assertEquals(probe.source, `${dir.path}/where.ts`);
});

Deno.test("plugins: a module's import.meta.url is a data: URL (the compiled binary's only path)", async () => {
  await using dir = await pluginDir({
    "meta.ts": `export const plugin = {
  name: "meta", version: "1", apiVersion: 1, kinds: ["resolver"],
  setup(ctx) { return { resolvers: [{ name: "meta", resolveName: () => ({ kind: "host", host: import.meta.url.slice(0, 5) }) }] }; },
};`,
  });
  const loaded = await loadPluginFile(`${dir.path}/meta.ts`, { cluster });
  const target = await loaded.parts.resolvers![0].resolveName!("x");
  assertEquals(target, { kind: "host", host: "data:" });
});

Deno.test("plugins: TypeScript-only constructs (types, interfaces, satisfies, enums) load", async () => {
  await using dir = await pluginDir({
    "typed.ts": `import type { PluginModule, Target } from "../../mod.ts";
interface Rule { suffix: string; namespace: string }
type Maybe<T> = T | null;
enum Mode { Strict = "strict", Loose = "loose" }
const rules: Rule[] = [{ suffix: ".corp", namespace: "demo" }] satisfies Rule[];
function match(name: string): Maybe<Target> {
  const rule = rules.find((r) => name.endsWith(r.suffix));
  return rule ? { kind: "service", namespace: rule.namespace, name: name.slice(0, -rule.suffix.length) } : null;
}
export const plugin: PluginModule = {
  name: "typed", version: "1.0.0", apiVersion: 1, kinds: ["resolver"],
  setup: (ctx) => ({ resolvers: [{ name: "typed-" + Mode.Strict, resolveName: (n: string) => match(n) }] }),
};
`,
  });
  const loaded = await loadPluginFile(`${dir.path}/typed.ts`, { cluster });
  assertEquals(loaded.parts.resolvers![0].name, "typed-strict");
  assertEquals(await loaded.parts.resolvers![0].resolveName!("hello.corp"), {
    kind: "service",
    namespace: "demo",
    name: "hello",
  });
});

Deno.test("plugins: a multi-file plugin folder links its relative imports", async () => {
  await using dir = await pluginDir({
    "multi/mod.ts": `import { suffix } from "./names/rules.ts";
export const plugin = { name: "multi", version: "1", apiVersion: 1, kinds: ["resolver"],
  setup: () => ({ resolvers: [{ name: "multi", resolveName: (n: string) => n.endsWith(suffix()) ? { kind: "host", host: "ok" } : null }] }) };`,
    "multi/names/rules.ts":
      `import { base } from "../base.ts";\nexport const suffix = (): string => base + ".multi";`,
    "multi/base.ts": `export const base = "";`,
  });
  assertEquals(await discoverPlugins(dir.path), [`${dir.path}/multi/mod.ts`]);
  const loaded = await loadPluginFile(`${dir.path}/multi/mod.ts`, { cluster });
  assertEquals(await loaded.parts.resolvers![0].resolveName!("a.multi"), {
    kind: "host",
    host: "ok",
  });
});

Deno.test("plugins: broken plugins fail with a message naming the file; the others still load", async () => {
  await using dir = await pluginDir({
    "a-syntax.ts": "export const plugin = {\n  name: 'x',,\n};\n",
    "b-version.ts": pluginSource("old", "return {};").replace("apiVersion: 1", "apiVersion: 99"),
    "c-missing.ts": "export const somethingElse = 1;\n",
    "d-throws-at-load.ts": "throw new Error('load-time boom');\nexport const plugin = {};\n",
    "e-throws-in-setup.ts": pluginSource("setup-thrower", "\n\n  throw new Error('setup boom');"),
    "f-npm-import.ts": `import lodash from "npm:lodash";\n${
      pluginSource("npm", "return {};")
    }\nconsole.log(lodash);`,
    "g-bare-import.ts": `\nimport { x } from "left-pad";\nconsole.log(x);\n${
      pluginSource("bare", "return {};")
    }`,
    "h-good.ts": pluginSource(
      "good",
      "return { resolvers: [{ name: 'good', resolveName: () => null }] };",
    ),
  });
  const { plugins, failures } = await loadPlugins([], [dir.path], { cluster });
  assertEquals(plugins.map((p) => p.name), ["good"]);
  const message = (file: string) => failures.find((f) => f.source.endsWith(file))?.message ?? "";
  assertMatch(message("a-syntax.ts"), /a-syntax\.ts:2:\d+: syntax error/);
  assertMatch(
    message("b-version.ts"),
    /b-version\.ts: plugin "old" was written for plugin API version 99, this k8stun provides version 1/,
  );
  assertMatch(message("c-missing.ts"), /c-missing\.ts: missing export "plugin"/);
  assertMatch(
    message("d-throws-at-load.ts"),
    /d-throws-at-load\.ts: failed to load: .*load-time boom/,
  );
  assertMatch(
    message("e-throws-in-setup.ts"),
    /e-throws-in-setup\.ts: plugin "setup-thrower" setup failed: setup boom \(at .*e-throws-in-setup\.ts:6:\d+\)/,
  );
  assertMatch(
    message("f-npm-import.ts"),
    /f-npm-import\.ts:1: cannot import "npm:lodash" at run time — .*bundle/,
  );
  assertMatch(
    message("g-bare-import.ts"),
    /g-bare-import\.ts:2: cannot import "left-pad" at run time/,
  );
  assertEquals(failures.length, 7);
});

Deno.test("plugins: a dialer that throws, rejects or hangs fails only that flow, as a DialError naming the plugin", async () => {
  await using dir = await pluginDir({
    "bad-dialers.ts":
      `export const plugin = { name: "bad", version: "1", apiVersion: 1, kinds: ["dialer", "resolver"],
  setup: (ctx) => ({
    resolvers: [{ name: "hang", resolveName: (n: string) => n === "hang.test" ? new Promise(() => {}) : null }],
    dialers: [
      { name: "thrower", accepts: (t: any) => t.port === 1, dial: () => { throw new Error("dial boom"); } },
      { name: "rejecter", accepts: (t: any) => t.port === 2, dial: () => Promise.reject(new ctx.DialError("refused", "nope")) },
      { name: "bad-accepts", accepts: () => { throw new Error("accepts boom"); }, dial: () => Promise.reject(new Error("never")) },
    ],
  }) };`,
  });
  const loaded = await loadPluginFile(`${dir.path}/bad-dialers.ts`, { cluster });
  const [thrower, rejecter, badAccepts] = loaded.parts.dialers!;
  const options = {
    signal: new AbortController().signal,
    flow: { port: 1, protocol: "tcp" as const, front: "socks" as const },
  };
  const e1 = await thrower.dial({ kind: "host", host: "x", port: 1 }, options).catch((e) => e);
  assert(e1 instanceof DialError);
  assertMatch(e1.message, /^plugin bad: dialer thrower dial\(\): dial boom/);
  const e2 = await rejecter.dial({ kind: "host", host: "x", port: 2 }, options).catch((e) => e);
  assertEquals(e2.reason, "refused", "a classified failure keeps its reason");
  assertEquals(await badAccepts.accepts({ kind: "host", host: "x", port: 3 }), false);
  const router = new Router({ resolvers: loaded.parts.resolvers!, dialers: [] });
  const started = Date.now();
  const e3 = await router.resolve({ name: "hang.test", port: 80, protocol: "tcp", front: "socks" })
    .catch((e) => e);
  assert(e3 instanceof DialError);
  assertEquals(e3.reason, "timeout");
  assertMatch(e3.message, /plugin bad: resolver hang resolveName\(hang.test\)/);
  assert(Date.now() - started < 5_000);
});

Deno.test({
  name: "plugins: the example resolver's custom name resolves over DNS and through SOCKS",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const { ClusterStore } = await import("../../core/cluster/store.ts");
    const { ClusterAnswerer } = await import("../../core/dns/answer.ts");
    const { VipPool, parseVipBase } = await import("../../core/vip.ts");
    const { startProxyFront } = await import("../../cli/proxy_front.ts");
    await using dir = await pluginDir({ "internal-names.ts": await example("internal-names.ts") });
    await using echo = await startEchoServer();
    const store = new ClusterStore();
    store.applyService({
      metadata: { namespace: "default", name: "api" },
      spec: { clusterIP: "10.96.0.9", ports: [{ port: 80 }] },
    });
    const { plugins } = await loadPlugins([], [dir.path], { cluster: store });
    const resolvers = collectParts(plugins).resolvers;
    const scope = {
      clusterDomain: "cluster.local",
      isNamespace: () => false,
      explicitNamespaces: new Set<string>(),
    };
    const vips = new VipPool({ network: parseVipBase(undefined), staleMs: 0 });
    const answerer = new ClusterAnswerer(store, vips, scope, resolvers);
    const a = await answerer.answer({ type: "A", name: "api.internal" });
    assertEquals(a?.answers, [{ type: "A", name: "api.internal", ttl: 30, data: "198.18.0.2" }]);
    assertEquals(vips.lookup("198.18.0.2"), { type: "service", namespace: "default", name: "api" });

    // Through SOCKS: the custom name becomes the service, dialed by a test dialer that records it.
    const dialed: string[] = [];
    const proxy = startProxyFront({
      store,
      scope,
      resolvers,
      dialers: [{
        name: "record",
        accepts: () => true,
        async dial(target) {
          dialed.push(JSON.stringify(target));
          const conn = await Deno.connect({ hostname: "127.0.0.1", port: echo.port });
          return { readable: conn.readable, writable: conn.writable, abort: () => conn.close() };
        },
      }],
      socks: { hostname: "127.0.0.1", port: 0 },
    });
    try {
      store.applyEndpointSlice({
        metadata: {
          namespace: "default",
          name: "api-x",
          labels: { "kubernetes.io/service-name": "api" },
        },
        endpoints: [{
          addresses: ["10.244.0.9"],
          conditions: { ready: true },
          targetRef: { kind: "Pod", name: "api-0" },
        }],
        ports: [{ port: 8080 }],
      });
      await new Deno.Command("curl", {
        args: [
          "-s",
          "-m",
          "5",
          "--socks5-hostname",
          `127.0.0.1:${proxy.socksAddress!.port}`,
          "http://api.internal/",
        ],
        stdout: "piped",
      }).output();
      assertEquals(dialed.length, 1);
      assertEquals(JSON.parse(dialed[0]), {
        kind: "pod",
        namespace: "default",
        name: "api-0",
        port: 8080,
        ip: "10.244.0.9",
      });
    } finally {
      await proxy.close();
    }
  },
});

Deno.test("plugins: k8stun plugins list shows built-ins and loaded plugins in effective order", async () => {
  await using dir = await pluginDir({
    "internal-names.ts": await example("internal-names.ts"),
    "logging-dialer.ts": await example("logging-dialer.ts"),
  });
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("../../cli/main.ts", import.meta.url).pathname,
      "plugins",
      "list",
      "--plugin-dir",
      dir.path,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const rows = new TextDecoder().decode(out.stdout).split("\n").filter((l) => /^\d+\s/.test(l))
    .map((l) => l.split(/\s+/)[1]);
  assertEquals(rows, [
    "logging-dialer",
    "internal-names",
    "dns-modes",
    "kubernetes",
    "portforward",
    "direct",
  ]);
});

Deno.test("plugins: k8stun plugins check FILE loads and reports that file", async () => {
  await using dir = await pluginDir({
    "one.ts": pluginSource(
      "one",
      "return { resolvers: [{ name: 'one', resolveName: () => null }] };",
    ),
  });
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("../../cli/main.ts", import.meta.url).pathname,
      "plugins",
      "check",
      `${dir.path}/one.ts`,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assertMatch(
    text,
    new RegExp(
      `^ok\\s+one 0\\.0\\.1 \\(resolver, dialer; priority 50\\) — ${dir.path}/one\\.ts$`,
      "m",
    ),
  );
  assertEquals(out.code, 0);
});
