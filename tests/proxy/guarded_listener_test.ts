/**
 * The guarded accept loop's caps, in process: established connections per source and in total,
 * fitted to the descriptor limit, waiting when full; and a proxy listener's address in use.
 */
import { assertEquals, assertMatch } from "../assert.ts";
import { startProxy } from "../../core/proxy/server.ts";
import { Router } from "../../core/router.ts";
import { GuardedListener, type ListenerLimits } from "../../core/guarded_listener.ts";

/**
 * Opens `count` connections and returns how many the listener kept after a moment (under a
 * descriptor limit of `descriptorLimit`, roomy by default).
 */
async function kept(
  limits: ListenerLimits,
  count: number,
  descriptorLimit = 1_000_000,
): Promise<number> {
  const release = Promise.withResolvers<void>();
  const listener = new GuardedListener(Deno.listen({ hostname: "127.0.0.1", port: 0 }), {
    name: "test",
    limits,
    descriptorLimit,
    handle: async (guarded) => {
      guarded.established();
      await release.promise;
    },
  });
  const conns = await Promise.all(
    Array.from(
      { length: count },
      () => Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }),
    ),
  );
  await new Promise((resolve) => setTimeout(resolve, 200));
  const open = listener.counts().open;
  assertEquals(listener.counts().refused, count - open);
  release.resolve();
  listener.close();
  for (const conn of conns) conn.close();
  return open;
}

const roomy: ListenerLimits = {
  maxConnections: 100,
  maxPerSource: 100,
  maxHandshakesPerSource: 100,
  handshakeMs: 10_000,
};

Deno.test("guarded listener: connections past the per-source cap are closed at once", async () => {
  assertEquals(await kept({ ...roomy, maxPerSource: 3 }, 8), 3);
});

Deno.test("guarded listener: connections past the total cap are closed at once", async () => {
  assertEquals(await kept({ ...roomy, maxConnections: 5 }, 8), 5);
});

Deno.test("guarded listener: the total cap fits a sixteenth of the descriptor limit", async () => {
  assertEquals(await kept(roomy, 30, 320), 20, "320 / 16 descriptors, one each");
  assertEquals(await kept({ ...roomy, descriptorsEach: 2 }, 30, 320), 10, "two each");
  assertEquals(await kept({ ...roomy, maxConnections: 5 }, 30, 320), 5, "the cap, when lower");
});

Deno.test("guarded listener: a handshake not finished by its deadline is closed", async () => {
  const listener = new GuardedListener(Deno.listen({ hostname: "127.0.0.1", port: 0 }), {
    name: "test",
    limits: { ...roomy, handshakeMs: 300 },
    handle: (guarded) => guarded.conn.read(new Uint8Array(1)).then(() => {}),
  });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
  assertEquals(await conn.read(new Uint8Array(1)).catch(() => null), null);
  assertEquals(listener.counts().timedOut, 1);
  conn.close();
  listener.close();
});

Deno.test("guarded listener: waiting when full, excess connections stay in the kernel's backlog and are taken as slots free", async () => {
  const finish: (() => void)[] = [];
  const listener = new GuardedListener(Deno.listen({ hostname: "127.0.0.1", port: 0 }), {
    name: "test",
    limits: { ...roomy, maxConnections: 3 },
    descriptorLimit: 1_000_000,
    waitWhenFull: true,
    handle: (guarded) => {
      guarded.established();
      return new Promise<void>((resolve) => finish.push(resolve));
    },
  });
  const conns = await Promise.all(
    Array.from(
      { length: 5 },
      () => Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }),
    ),
  );
  await new Promise((resolve) => setTimeout(resolve, 200));
  assertEquals(listener.counts(), { open: 3, inHandshake: 0, refused: 0, timedOut: 0 });
  finish.shift()!();
  await new Promise((resolve) => setTimeout(resolve, 200));
  assertEquals(listener.counts().open, 3, "the fourth was taken when the first ended");
  assertEquals(finish.length, 3);
  listener.close();
  await listener.done;
  for (const conn of conns) conn.close();
  for (const done of finish) done();
});

Deno.test("proxy: a listen address in use is an error naming it and the flags that move it; the other listener is closed", async () => {
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const free = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const freePort = (free.addr as Deno.NetAddr).port;
  free.close();
  try {
    const error = (() => {
      try {
        startProxy({
          router: new Router({ resolvers: [], dialers: [] }),
          socks: { hostname: "127.0.0.1", port: freePort },
          http: { hostname: "127.0.0.1", port: (taken.addr as Deno.NetAddr).port },
          pac: () => "",
        });
      } catch (e) {
        return e as Error;
      }
    })();
    assertMatch(
      error?.message ?? "",
      /^the HTTP proxy cannot listen on 127\.0\.0\.1:\d+: something else uses that port; give it another address \(`k8stun proxy --listen-http`\)$/,
    );
    // The SOCKS5 listener opened first was closed again: its port is free (once its pending
    // accept has been cancelled, a turn later).
    await new Promise((resolve) => setTimeout(resolve, 50));
    Deno.listen({ hostname: "127.0.0.1", port: freePort }).close();
  } finally {
    taken.close();
  }
});
