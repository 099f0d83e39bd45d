/** The SOCKS5-upstream dialer's handshake (RFC 1928): one round trip without credentials. */
import { assert, assertEquals } from "../assert.ts";
import { createSocksUpstreamDialer } from "../../plugins/socks_upstream/mod.ts";
import { DialError } from "../../mod.ts";
import { proxyOverSim } from "./sim_proxy.ts";

const options = () => ({
  signal: new AbortController().signal,
  flow: { port: 5432, protocol: "tcp" as const, front: "tun" as const },
});

Deno.test({
  name:
    "socks upstream: without credentials the CONNECT request follows the greeting before any reply",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    // A server that answers nothing until it holds greeting and request: a dialer that waits for
    // the method reply before sending its request never gets through.
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const served = (async () => {
      const conn = await listener.accept();
      const got: number[] = [];
      const buffer = new Uint8Array(64);
      const deadline = setTimeout(() => conn.close(), 3000);
      try {
        while (got.length < 3 + 10) {
          const n = await conn.read(buffer);
          if (n === null) return got;
          got.push(...buffer.subarray(0, n));
        }
        clearTimeout(deadline);
        await conn.write(new Uint8Array([5, 0, 5, 0, 0, 1, 127, 0, 0, 1, 0x1f, 0x90, 0x68, 0x69]));
        return got;
      } finally {
        clearTimeout(deadline);
      }
    })();
    const port = (listener.addr as Deno.NetAddr).port;
    const dialer = createSocksUpstreamDialer({ hostname: "127.0.0.1", port });
    try {
      const duplex = await dialer.dial({ kind: "host", host: "10.1.2.3", port: 8080 }, options());
      const { value } = await duplex.readable.getReader().read();
      assertEquals(new TextDecoder().decode(value), "hi", "bytes after the reply are the app's");
      assertEquals(await served, [5, 1, 0, 5, 1, 0, 1, 10, 1, 2, 3, 0x1f, 0x90]);
      duplex.abort();
    } finally {
      listener.close();
    }
  },
});

Deno.test({
  name:
    "socks upstream: without credentials k8stun's own SOCKS listener takes the one-round-trip handshake",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using p = await proxyOverSim();
    const [hostname, port] = p.socks.split(":");
    const dialer = createSocksUpstreamDialer({ hostname, port: Number(port) });
    const pod = p.store.pod("demo", "db-1")!;
    const duplex = await dialer.dial(
      { kind: "pod", namespace: "demo", name: "db-1", port: 5432, ip: pod.ip },
      options(),
    );
    const writer = duplex.writable.getWriter();
    await writer.write(new TextEncoder().encode("pipelined"));
    await writer.close();
    assertEquals(await new Response(duplex.readable).text(), "db-1\npipelined");
    const refused = await dialer.dial(
      { kind: "pod", namespace: "demo", name: "db-1", port: 1, ip: pod.ip },
      options(),
    ).catch((e) => e);
    assert(refused instanceof DialError);
    assertEquals(refused.reason, "refused");
  },
});
