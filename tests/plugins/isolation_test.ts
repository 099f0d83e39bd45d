import { assert, assertEquals, assertMatch } from "../assert.ts";
import { DialError } from "../../mod.ts";
import { DialerChain } from "../../core/plugins/chain.ts";
import { workerPermissions } from "../../core/plugins/isolation/host.ts";
import { collectParts, loadPlugins } from "../../core/plugins/loader.ts";
import { echoDialer, startEchoServer } from "./echo.ts";
import { example, fakeCluster, pluginDir } from "./support.ts";

const cluster = fakeCluster(["demo/hello"]);
const options = (port: number) => ({
  signal: new AbortController().signal,
  flow: { port, protocol: "tcp" as const, front: "socks" as const },
});

/** A dialer plugin that connects with Deno.connect itself, declaring `net`. */
function connectingPlugin(name: string, net: string): string {
  return `export const plugin = {
  name: "${name}", version: "1", apiVersion: 1, kinds: ["dialer", "resolver"],
  permissions: { net: ${net} },
  setup(ctx) {
    return {
      resolvers: [{ name: "${name}", resolveName: (n) =>
        ctx.cluster.hasService("demo", n.split(".")[0]) ? { kind: "service", namespace: "demo", name: n.split(".")[0] } : null }],
      dialers: [{ name: "${name}", accepts: (t) => t.kind === "host",
        async dial(t) {
          const conn = await Deno.connect({ hostname: t.host, port: t.port });
          // conn.writable's close() closes the whole socket; half-close with closeWrite().
          const writable = new WritableStream({ write: (c) => conn.write(c).then(() => {}), close: () => conn.closeWrite() });
          return { readable: conn.readable, writable, abort: () => conn.close() };
        } }],
    };
  },
};`;
}

async function roundTrip(
  dial: () => Promise<
    { readable: ReadableStream<Uint8Array>; writable: WritableStream<Uint8Array> }
  >,
  text: string,
) {
  const duplex = await dial();
  const writer = duplex.writable.getWriter();
  await writer.write(new TextEncoder().encode(text));
  await writer.close();
  return await new Response(duplex.readable).text();
}

Deno.test("plugins: an isolated plugin gets only the permissions it declares", () => {
  assertEquals(workerPermissions({ net: ["127.0.0.1:8080"] }), {
    net: ["127.0.0.1:8080"],
    read: false,
    env: false,
    write: false,
    run: false,
    ffi: false,
    sys: false,
    import: false,
  });
  assertEquals(workerPermissions(undefined).net, false);
  assertEquals(workerPermissions({ read: true }).read, "inherit");
});

Deno.test("plugins: an isolated dialer with net permission relays bytes; its resolver reads the cluster", async () => {
  await using echo = await startEchoServer();
  await using dir = await pluginDir({ "netty.ts": connectingPlugin("netty", '["127.0.0.1"]') });
  const { plugins, failures } = await loadPlugins([], [dir.path], { cluster, isolate: true });
  assertEquals(failures, []);
  try {
    assertEquals(plugins[0].isolated, true);
    const parts = collectParts(plugins);
    assertEquals(await parts.resolvers[0].resolveName!("hello.anything"), {
      kind: "service",
      namespace: "demo",
      name: "hello",
    });
    assertEquals(await parts.resolvers[0].resolveName!("nosuch.anything"), null);
    const reply = await roundTrip(
      () =>
        parts.dialers[0].dial(
          { kind: "host", host: "127.0.0.1", port: echo.port },
          options(echo.port),
        ),
      "through a worker and back",
    );
    assertEquals(reply, "through a worker and back");
  } finally {
    for (const p of plugins) p.close?.();
  }
});

Deno.test("plugins: an isolated dialer without net permission fails that dial only, naming the plugin", async () => {
  await using echo = await startEchoServer();
  await using dir = await pluginDir({ "nonet.ts": connectingPlugin("nonet", "false") });
  const { plugins } = await loadPlugins([], [dir.path], { cluster, isolate: true });
  try {
    const parts = collectParts(plugins);
    const error = await parts.dialers[0].dial(
      { kind: "host", host: "127.0.0.1", port: echo.port },
      options(echo.port),
    ).catch((e) => e);
    assert(error instanceof DialError);
    assertMatch(
      error.message,
      /^plugin nonet: dialer nonet dial\(\): .*(net|NotCapable|Requires)/i,
    );
  } finally {
    for (const p of plugins) p.close?.();
  }
});

Deno.test("plugins: the example logging dialer runs isolated and passes connections on with dialNext", async () => {
  await using echo = await startEchoServer();
  await using dir = await pluginDir({ "logging-dialer.ts": await example("logging-dialer.ts") });
  const dialers = new DialerChain();
  const { plugins, failures } = await loadPlugins([echoDialer(echo.port)], [dir.path], {
    cluster,
    dialers,
    isolate: true,
  });
  assertEquals(failures, []);
  try {
    assertEquals(plugins.map((p) => [p.name, p.isolated ?? false]), [
      ["logging-dialer", true],
      ["test-echo", false],
    ]);
    const [wrapper] = collectParts(plugins).dialers;
    const reply = await roundTrip(
      () => wrapper.dial({ kind: "host", host: "127.0.0.1", port: echo.port }, options(echo.port)),
      "wrapped twice over thread boundaries",
    );
    assertEquals(reply, "wrapped twice over thread boundaries");
  } finally {
    for (const p of plugins) p.close?.();
  }
});

Deno.test("plugins: an isolated resolver stuck in a loop times out; the plugin's dialers still fail cleanly", async () => {
  await using dir = await pluginDir({
    "spin.ts":
      `export const plugin = { name: "spin", version: "1", apiVersion: 1, kinds: ["resolver"],
  setup: () => ({ resolvers: [{ name: "spin", resolveName: (n) => { if (n === "spin.test") { while (true) {} } return null; } }] }) };`,
  });
  const { plugins } = await loadPlugins([], [dir.path], { cluster, isolate: true });
  try {
    const [resolver] = collectParts(plugins).resolvers;
    const started = Date.now();
    const error = await Promise.resolve(resolver.resolveName!("spin.test")).catch((e) => e);
    assert(error instanceof DialError);
    assertEquals(error.reason, "timeout");
    assert(Date.now() - started < 4000);
  } finally {
    for (const p of plugins) p.close?.();
  }
});
