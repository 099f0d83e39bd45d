/** The port-forward dialer's fallback chain: WebSocket tunnel → direct SPDY/3.1 upgrade → v4. */
import { ApiAccess } from "../../core/k8s/api_access.ts";
import { assert, assertEquals } from "../assert.ts";
import { DEMO_FIXTURE, startSimCluster } from "../../sim/mod.ts";
import { createPortForwardDialer } from "../../plugins/portforward/mod.ts";

const options = () => ({
  signal: new AbortController().signal,
  flow: { port: 1, protocol: "tcp" as const, front: "tun" as const },
});

/**
 * A plain-HTTP proxy in front of the API server that answers 400 to any `Upgrade: SPDY/3.1`
 * (as proxies that pass only WebSocket upgrades do) and relays everything else.
 */
function spdyStrippingProxy(upstreamPort: number) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  let refused = 0;
  (async () => {
    for await (const client of listener) {
      conns.add(client);
      (async () => {
        const buffer = new Uint8Array(16 * 1024);
        let head = new Uint8Array(0);
        while (!new TextDecoder().decode(head).includes("\r\n\r\n")) {
          const n = await client.read(buffer);
          if (n === null) return;
          const merged = new Uint8Array(head.length + n);
          merged.set(head);
          merged.set(buffer.subarray(0, n), head.length);
          head = merged;
        }
        if (/^upgrade:\s*spdy\/3\.1\r?$/im.test(new TextDecoder().decode(head))) {
          refused++;
          await client.write(new TextEncoder().encode(
            "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
          ));
          return;
        }
        const upstream = await Deno.connect({ hostname: "127.0.0.1", port: upstreamPort });
        conns.add(upstream);
        await upstream.write(head);
        await Promise.all([
          client.readable.pipeTo(upstream.writable).catch(() => {}),
          upstream.readable.pipeTo(client.writable).catch(() => {}),
        ]);
      })().catch(() => {}).finally(() => {
        try {
          client.close();
        } catch {
          // closed by the pipe
        }
      });
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    get refused() {
      return refused;
    },
    close() {
      listener.close();
      for (const conn of conns) {
        try {
          conn.close();
        } catch {
          // closed already
        }
      }
    },
  };
}

Deno.test({
  name:
    "portforward: behind a proxy that refuses SPDY upgrades, a cluster without the tunnel is reached over v4 WebSockets",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using sim = await startSimCluster({ fixture: DEMO_FIXTURE, tunnel: false, tls: false });
    const proxy = spdyStrippingProxy(Number(new URL(sim.url).port));
    const kc = ApiAccess.fromText(
      sim.kubeconfig().replace(/^(\s*)server: (\S+:)\d+$/m, `$1server: $2${proxy.port}`),
    );
    const dialer = createPortForwardDialer({ access: kc });
    try {
      for (let i = 0; i < 2; i++) {
        const duplex = await dialer.dial(
          { kind: "pod", namespace: "demo", name: "db-1", port: 5432 },
          options(),
        );
        const { value } = await duplex.readable.getReader().read();
        assertEquals(new TextDecoder().decode(value), "db-1\n");
        duplex.abort();
      }
      assertEquals(proxy.refused, 1, "the direct upgrade was tried once, then remembered");
      assertEquals(sim.upgrades().get("v4.channel.k8s.io"), 2);
      assert(!sim.upgrades().has("spdy/3.1 direct"));
    } finally {
      await dialer.close?.();
      proxy.close();
    }
  },
});

Deno.test({
  name: "portforward: the transports can be narrowed to the direct SPDY upgrade alone",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using sim = await startSimCluster({ fixture: DEMO_FIXTURE });
    const kc = ApiAccess.fromText(sim.kubeconfig());
    const dialer = createPortForwardDialer({ access: kc, transports: ["direct"] });
    try {
      const duplex = await dialer.dial(
        { kind: "pod", namespace: "demo", name: "db-0", port: 5432 },
        options(),
      );
      const { value } = await duplex.readable.getReader().read();
      assertEquals(new TextDecoder().decode(value), "db-0\n");
      duplex.abort();
      assertEquals(sim.upgrades().get("spdy/3.1 direct"), 1);
      assert(!sim.upgrades().has("SPDY/3.1+portforward.k8s.io"));
    } finally {
      await dialer.close?.();
    }
  },
});
