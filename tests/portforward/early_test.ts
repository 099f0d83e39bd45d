/**
 * Early handover (DialOptions.early, what the TUN front uses): the port-forward dial returns
 * before the kubelet's verdict, and a refusing pod is replayed onto the next ready pod.
 */
import { ApiAccess } from "../../core/k8s/api_access.ts";
import { assert, assertEquals, assertMatch } from "../assert.ts";
import { DEMO_FIXTURE, startSimCluster } from "../../sim/mod.ts";
import { startClusterSync } from "../../core/cluster/sync.ts";
import { Router } from "../../core/router.ts";
import { createPortForwardDialer } from "../../plugins/portforward/mod.ts";
import { DialError, type Duplex } from "../../mod.ts";

const flow = { port: 80, protocol: "tcp" as const, front: "tun" as const, name: "hello.demo" };

async function routerOverSim(tunnel = true) {
  const sim = await startSimCluster({ fixture: DEMO_FIXTURE, tunnel });
  const access = ApiAccess.fromText(sim.kubeconfig("demo"));
  const view = await startClusterSync({ access, namespaces: ["demo"] });
  await view.synced;
  const dialer = createPortForwardDialer({ access });
  const router = new Router({
    resolvers: [{
      name: "test",
      resolveName: (name) => {
        const [first, second] = name.split(".");
        return second === "pod"
          ? { kind: "pod", namespace: "demo", name: first }
          : { kind: "service", namespace: second, name: first };
      },
    }],
    dialers: [dialer],
    cluster: view.store,
  });
  return {
    sim,
    router,
    async [Symbol.asyncDispose]() {
      await dialer.close?.();
      view.close();
      await sim.close();
    },
  };
}

/** Writes an HTTP request at once (before any verdict) and reads the whole answer. */
async function get(duplex: Duplex): Promise<string> {
  const writer = duplex.writable.getWriter();
  await writer.write(new TextEncoder().encode("GET / HTTP/1.0\r\nHost: hello\r\n\r\n"));
  await writer.close();
  return await new Response(duplex.readable).text();
}

for (const tunnel of [true, false]) {
  const transport = tunnel ? "SPDY session" : "v4 WebSocket";
  Deno.test({
    name:
      `early (${transport}): a refusing pod is replayed onto the next ready pod, request intact`,
    sanitizeResources: false,
    sanitizeOps: false,
    async fn() {
      await using s = await routerOverSim(tunnel);
      s.sim.faults.portForward("demo", "hello-7d9f-x2k4p", 8080, { kind: "refuse" });
      for (let i = 0; i < 4; i++) {
        const opened = await s.router.open(flow, new AbortController().signal, { early: true });
        assertMatch(await get(opened.duplex), /^HTTP\/1\.[01] 200[^]*hello from hello-7d9f-q8w3n /);
      }
    },
  });
}

Deno.test({
  name: "early: the dial returns before the kubelet's verdict; without early it waits for it",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using s = await routerOverSim();
    const signal = new AbortController().signal;
    await get((await s.router.open(flow, signal, { early: true })).duplex); // session is up
    const dialer = createPortForwardDialer({
      access: ApiAccess.fromText(s.sim.kubeconfig("demo")),
    });
    try {
      const target = { kind: "pod" as const, namespace: "demo", name: "db-0", port: 5432 };
      const early = await dialer.dial(target, { signal, flow, early: true });
      let settled = false;
      early.accepted!.then(() => settled = true);
      await Promise.resolve();
      assertEquals(settled, false, "handed over before the verdict");
      await early.accepted;
      early.abort();
      const late = await dialer.dial(target, { signal, flow });
      assertEquals(late.accepted, undefined, "confirmed before dial returned");
      late.abort();
    } finally {
      await dialer.close?.();
    }
  },
});

Deno.test({
  name: "early: a refused pod with no other candidate fails the connection as refused",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using s = await routerOverSim();
    s.sim.faults.portForward("demo", "db-0", 5432, { kind: "refuse" });
    const opened = await s.router.open(
      { ...flow, name: "db-0.pod", port: 5432 },
      new AbortController().signal,
      { early: true },
    ).catch((e) => e);
    // A refusal can arrive before the dial returns (then the dial fails) or after (then the
    // stream fails); either way the app sees "refused", never a hang or a clean end.
    if (opened instanceof DialError) assertEquals(opened.reason, "refused");
    else {
      const error = await new Response(opened.duplex.readable).text().then(() => null, (e) => e);
      assert(error instanceof DialError && error.reason === "refused", String(error));
    }
  },
});
