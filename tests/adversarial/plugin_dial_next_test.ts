/**
 * A dialer plugin that tries to use the dialers after it (in a real run: the port-forward, with
 * the user's cluster credentials) to reach a target of its own choosing: through `ctx.dialNext`
 * with another target, and — isolated — by posting its own `dialNext` message to k8stun, around
 * the context it was given. Each is refused; the next dialer never sees the chosen target.
 */
import { assert, assertEquals, assertMatch } from "../assert.ts";
import type { DialTarget, Duplex, PluginModule } from "../../mod.ts";
import { DialerChain } from "../../core/plugins/chain.ts";
import { collectParts, loadPlugins } from "../../core/plugins/loader.ts";
import { fakeCluster, pluginDir } from "../plugins/support.ts";

const cluster = fakeCluster(["demo/hello"]);
const ASKED: DialTarget = { kind: "pod", namespace: "demo", name: "hello-0", port: 8080 };
const options = () => ({
  signal: new AbortController().signal,
  flow: { port: 80, protocol: "tcp" as const, front: "socks" as const },
});

/** A built-in-style last dialer that records what it is asked to dial and answers at once. */
function recordingDialer(dialed: DialTarget[]): PluginModule {
  return {
    name: "record",
    version: "0",
    apiVersion: 1,
    kinds: ["dialer"],
    setup: () => ({
      dialers: [{
        name: "record",
        accepts: () => true,
        dial(target): Promise<Duplex> {
          dialed.push(target);
          return Promise.resolve({
            readable: new ReadableStream({ start: (c) => c.close() }),
            writable: new WritableStream(),
            abort() {},
          });
        },
      }],
    }),
  };
}

/** Wraps every dial but passes on a connection to kube-system's etcd instead. */
const REDIRECTOR = `
export const plugin = {
  name: "redirector", version: "1", apiVersion: 1, kinds: ["dialer"], priority: 1,
  setup: (ctx) => ({ dialers: [{ name: "redirector", accepts: () => true,
    dial: (target, options) =>
      ctx.dialNext({ kind: "pod", namespace: "kube-system", name: "etcd-0", port: 2379 }, options),
  }] }),
};
`;

/**
 * Isolated, goes around ctx: posts its own \`dialNext\` message to k8stun for etcd while it
 * passes on the dial it was given.
 */
const FORGER = `
export const plugin = {
  name: "forger", version: "1", apiVersion: 1, kinds: ["dialer"], priority: 1,
  setup: (ctx) => ({ dialers: [{ name: "forger", accepts: () => true,
    dial(target, options) {
      self.postMessage({ type: "dialNext", id: 424242,
        target: { kind: "pod", namespace: "kube-system", name: "etcd-0", port: 2379 },
        flow: { port: 2379, protocol: "tcp", front: "socks" } });
      return ctx.dialNext(target, options);
    } }] }),
};
`;

/** Passes on exactly the connection it is asked for (the legitimate use). */
const PASS_ON = `
export const plugin = {
  name: "pass-on", version: "1", apiVersion: 1, kinds: ["dialer"], priority: 1,
  setup: (ctx) => ({ dialers: [{ name: "pass-on", accepts: () => true,
    dial: (target, options) => ctx.dialNext({ ...target }, options) }] }),
};
`;

for (const isolate of [true, false]) {
  const mode = isolate ? "isolated" : "in-process";

  Deno.test(`adversarial plugins: ${mode}, ctx.dialNext to a target the plugin chose is refused`, async () => {
    await using dir = await pluginDir({ "redirector.js": REDIRECTOR });
    const dialed: DialTarget[] = [];
    const { plugins, failures } = await loadPlugins([recordingDialer(dialed)], [dir.path], {
      cluster,
      dialers: new DialerChain(),
      isolate,
    });
    try {
      assertEquals(failures, []);
      const [redirector] = collectParts(plugins).dialers;
      const error = await redirector.dial(ASKED, options()).catch((e) => e);
      assert(error instanceof Error, "the redirected dial must fail");
      assertMatch(
        error.message,
        /ctx\.dialNext\(pod kube-system\/etcd-0:2379\) refused: a dialer may only pass on the connection it was asked for \(pod demo\/hello-0:8080\)/,
      );
      assertEquals(dialed, [], "the next dialer never saw the plugin's target");
    } finally {
      for (const p of plugins) p.close?.();
    }
  });

  Deno.test(`adversarial plugins: ${mode}, ctx.dialNext with the target it was given still works`, async () => {
    await using dir = await pluginDir({ "pass-on.js": PASS_ON });
    const dialed: DialTarget[] = [];
    const { plugins } = await loadPlugins([recordingDialer(dialed)], [dir.path], {
      cluster,
      dialers: new DialerChain(),
      isolate,
    });
    try {
      const [passOn] = collectParts(plugins).dialers;
      const duplex = await passOn.dial(ASKED, options());
      assertEquals(await new Response(duplex.readable).text(), "");
      assertEquals(dialed, [ASKED]);
    } finally {
      for (const p of plugins) p.close?.();
    }
  });
}

Deno.test("adversarial plugins: isolated, a dialNext message the plugin posts itself is refused", async () => {
  await using dir = await pluginDir({ "forger.js": FORGER });
  const dialed: DialTarget[] = [];
  const { plugins, failures } = await loadPlugins([recordingDialer(dialed)], [dir.path], {
    cluster,
    dialers: new DialerChain(),
    isolate: true,
  });
  try {
    assertEquals(failures, []);
    const [forger] = collectParts(plugins).dialers;
    const duplex = await forger.dial(ASKED, options());
    await new Response(duplex.readable).text();
    // The forged message was posted first, so k8stun handled it before the legitimate one.
    assertEquals(dialed, [ASKED], "only the dial k8stun asked for reached the next dialer");
  } finally {
    for (const p of plugins) p.close?.();
  }
});
