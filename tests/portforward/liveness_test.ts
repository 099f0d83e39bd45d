/**
 * Liveness of the port-forward links to the API server, time-compressed: a black-holed API server
 * is noticed within the liveness limit and the next dial after it comes back works; an idle
 * connection survives a proxy that kills idle connections; after a suspend new connections get a
 * new session. The simulator sits behind a TCP relay on loopback (tests/lab/outage_relay.ts).
 */
import { ApiAccess } from "../../core/k8s/api_access.ts";
import { assert, assertEquals, assertMatch } from "../assert.ts";
import { DEMO_FIXTURE, startSimCluster } from "../../sim/mod.ts";
import { createPortForwardDialer } from "../../plugins/portforward/mod.ts";
import {
  LinkLiveness,
  type LivenessClock,
  type LivenessOptions,
} from "../../plugins/portforward/link_liveness.ts";
import type { Dialer, Duplex } from "../../mod.ts";
import { startOutageRelay } from "../lab/outage_relay.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ECHO = { kind: "pod" as const, namespace: "demo", name: "echo-5c6b-m9t2z", port: 7007 };
const dialOptions = () => ({
  signal: new AbortController().signal,
  flow: { port: 1, protocol: "tcp" as const, front: "tun" as const },
});

/** Writes `text` and reads the echo back within `limitMs`. */
async function echo(duplex: Duplex, text: string, limitMs = 3_000): Promise<string> {
  const writer = duplex.writable.getWriter();
  const reader = duplex.readable.getReader();
  try {
    await writer.write(new TextEncoder().encode(text));
    let got = "";
    const deadline = Date.now() + limitMs;
    while (got.length < text.length) {
      const timeout = sleep(Math.max(0, deadline - Date.now())).then(() => "timeout" as const);
      const read = await Promise.race([reader.read(), timeout]);
      if (read === "timeout") throw new Error(`no echo within ${limitMs} ms (got "${got}")`);
      if (read.done) throw new Error(`the connection ended after "${got}"`);
      got += new TextDecoder().decode(read.value);
    }
    return got;
  } finally {
    writer.releaseLock();
    reader.releaseLock();
  }
}

/** A simulated cluster reached through a relay, and a dialer for it with `liveness`. */
async function relayedCluster(
  liveness: LivenessOptions,
  relayOptions: { idleKillMs?: number } = {},
  tunnel = true,
) {
  const sim = await startSimCluster({ fixture: DEMO_FIXTURE, tunnel });
  const port = Number(new URL(sim.url).port);
  const relay = startOutageRelay({ hostname: "127.0.0.1", port }, undefined, relayOptions);
  const access = ApiAccess.fromText(
    sim.kubeconfig().replace(sim.url, `https://127.0.0.1:${relay.port}`),
  );
  const dialer: Dialer = createPortForwardDialer({
    access,
    liveness,
    handshakeTimeoutMs: 1_000,
  });
  return {
    sim,
    relay,
    dialer,
    async [Symbol.asyncDispose]() {
      await dialer.close?.();
      await relay.close();
      await sim.close();
    },
  };
}

const COMPRESSED: LivenessOptions = { keepaliveMs: 100, deadAfterMs: 600 };

for (const tunnel of [true, false]) {
  const transport = tunnel ? "SPDY session" : "v4 WebSocket";
  Deno.test({
    name:
      `liveness (${transport}): a black-holed API server fails the open connection within the liveness limit; a dial after it is back works`,
    sanitizeResources: false,
    sanitizeOps: false,
    async fn() {
      await using cluster = await relayedCluster(COMPRESSED, {}, tunnel);
      const duplex = await cluster.dialer.dial(ECHO, dialOptions());
      assertEquals(await echo(duplex, "before"), "before");
      cluster.relay.setMode("blackhole");
      const started = Date.now();
      const error = await echo(duplex, "into the void", 10_000).then(() => undefined, (e) => e);
      const noticedMs = Date.now() - started;
      console.log(`black hole noticed after ${noticedMs} ms (limit 600 ms)`);
      assert(error, "the connection went on through a black hole");
      assertMatch(String(error.message), /stopped answering/);
      assert(noticedMs < 5_000, `noticed only after ${noticedMs} ms`);
      cluster.relay.setMode("forward");
      const accepted = cluster.relay.accepted();
      const next = await cluster.dialer.dial(ECHO, dialOptions());
      assertEquals(await echo(next, "after"), "after");
      assert(cluster.relay.accepted() > accepted, "the new dial reused the dead link");
      await next.writable.close().catch(() => {});
    },
  });

  Deno.test({
    name:
      `liveness (${transport}): an idle connection survives a proxy that closes connections idle for 400 ms, for ten times that`,
    sanitizeResources: false,
    sanitizeOps: false,
    async fn() {
      await using cluster = await relayedCluster({ keepaliveMs: 100, deadAfterMs: 2_000 }, {
        idleKillMs: 400,
      }, tunnel);
      const duplex = await cluster.dialer.dial(ECHO, dialOptions());
      assertEquals(await echo(duplex, "hello"), "hello");
      await sleep(4_000);
      assertEquals(cluster.relay.idleKilled(), 0);
      assertEquals(await echo(duplex, "still there"), "still there");
      await duplex.writable.close().catch(() => {});
    },
  });
}

/** A clock the test moves: the wall clock can jump as across a suspend. */
class TestClock implements LivenessClock {
  wallOffset = 0;
  monotonic = () => performance.now();
  wall = () => Date.now() + this.wallOffset;
}

Deno.test({
  name:
    "liveness: after a suspend (the wall clock jumped past the monotonic one) new connections open a new session; an open one whose session still answers goes on",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const clock = new TestClock();
    await using cluster = await relayedCluster({ keepaliveMs: 100, deadAfterMs: 1_000, clock });
    const before = await cluster.dialer.dial(ECHO, dialOptions());
    assertEquals(await echo(before, "one"), "one");
    const reused = await cluster.dialer.dial(ECHO, dialOptions());
    assertEquals(cluster.relay.accepted(), 1, "the second dial did not share the session");
    clock.wallOffset += 60_000; // an hour-long sleep would look the same
    await sleep(300);
    const after = await cluster.dialer.dial(ECHO, dialOptions());
    assertEquals(await echo(after, "two"), "two");
    assertEquals(cluster.relay.accepted(), 2, "the dial after the suspend reused the old session");
    await sleep(1_500); // longer than the dead limit: the old session answered its probe
    assertEquals(await echo(before, "three"), "three");
    for (const d of [before, reused, after]) await d.writable.close().catch(() => {});
  },
});

Deno.test("liveness: the state machine pings a silent link, declares it dead after the limit, and never while reading is paused", () => {
  let now = 0;
  const clock: LivenessClock = { monotonic: () => now, wall: () => 1e12 + now };
  const events: string[] = [];
  let paused = false;
  const liveness = new LinkLiveness({
    ping: () => events.push(`ping@${now}`),
    dead: (silent) => events.push(`dead@${now}:${silent}`),
    suspended: (gap) => events.push(`suspended@${now}:${Math.round(gap / 1000)}s`),
    paused: () => paused,
  }, { keepaliveMs: 5_000, deadAfterMs: 15_000, clock });
  try {
    const advance = (ms: number) => {
      for (let t = 0; t < ms; t += 1_000) {
        now += 1_000;
        liveness.tick();
      }
    };
    advance(4_000);
    assertEquals(events, []);
    advance(1_000);
    assertEquals(events, ["ping@5000"]);
    liveness.heard();
    paused = true;
    advance(30_000);
    assertEquals(events, ["ping@5000"], "judged while paused");
    paused = false;
    advance(14_000);
    assertEquals(events, ["ping@5000", "ping@40000", "ping@45000"]);
    advance(1_000);
    assertEquals(events.at(-1), "dead@50000:15000");
  } finally {
    liveness.stop();
  }
});

Deno.test("liveness: a wall clock that jumps ahead of the monotonic one is a suspend: the link is reported and probed, then judged afresh", () => {
  let now = 0;
  let wall = 1e12;
  const clock: LivenessClock = { monotonic: () => now, wall: () => wall };
  const events: string[] = [];
  const liveness = new LinkLiveness({
    ping: () => events.push(`ping@${now}`),
    dead: () => events.push(`dead@${now}`),
    suspended: (gap) => events.push(`suspended:${Math.round(gap / 1000)}s`),
    paused: () => false,
  }, { keepaliveMs: 5_000, deadAfterMs: 15_000, clock });
  try {
    now += 1_000;
    wall += 1_000 + 3_600_000; // an hour asleep: CLOCK_MONOTONIC did not move
    liveness.tick();
    assertEquals(events, ["suspended:3600s", "ping@1000"]);
    for (let i = 0; i < 14; i++) {
      now += 1_000;
      wall += 1_000;
      liveness.tick();
    }
    assert(!events.some((e) => e.startsWith("dead")), "dead before the limit after waking");
    now += 1_000;
    wall += 1_000;
    liveness.tick();
    assertEquals(events.at(-1), "dead@16000");
  } finally {
    liveness.stop();
  }
});
