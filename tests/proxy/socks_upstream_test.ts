/** The SOCKS5-upstream dialer's handshake (RFC 1928): one round trip without credentials. */
import { assert, assertEquals } from "../assert.ts";
import { createSocksUpstreamDialer } from "../../plugins/socks_upstream/mod.ts";
import { DialError, type Duplex } from "../../mod.ts";
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

/** A scripted SOCKS5 server: each connection gets the reply `answer` returns for it. */
function scriptedProxy(answer: (index: number) => Promise<number>) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted: Deno.Conn[] = [];
  const requests: number[][] = [];
  const serving = (async () => {
    for await (const conn of listener) {
      const index = accepted.push(conn) - 1;
      (async () => {
        const got: number[] = [];
        const buffer = new Uint8Array(64);
        while (got.length < 3 + 10) {
          const n = await conn.read(buffer);
          if (n === null) return;
          got.push(...buffer.subarray(0, n));
        }
        requests[index] = got;
        const reply = await answer(index);
        await conn.write(new Uint8Array([5, 0, 5, reply, 0, 1, 127, 0, 0, 1, 0x1f, 0x90]));
        if (reply === 0) await conn.write(new TextEncoder().encode(`conn ${index}`));
      })().catch(() => {});
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    accepted,
    requests,
    async [Symbol.asyncDispose]() {
      listener.close();
      await serving.catch(() => {});
      for (const conn of accepted) {
        try {
          conn.close();
        } catch {
          // closed by the dialer
        }
      }
    },
  };
}

const target = { kind: "host" as const, host: "10.1.2.3", port: 8080 };

Deno.test({
  name:
    "socks upstream: an early dial returns before the proxy's verdict, and a refusal rejects `accepted` and errors the readable",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const verdict = Promise.withResolvers<number>();
    await using proxy = scriptedProxy(() => verdict.promise);
    const dialer = createSocksUpstreamDialer({ hostname: "127.0.0.1", port: proxy.port });
    try {
      // The proxy answers once the dial returned, or after 2 s: a dial that waits for the
      // answer returns only then.
      let waited = false;
      const fallback = setTimeout(() => (waited = true, verdict.resolve(5)), 2000);
      const duplex = await dialer.dial(target, { ...options(), early: true });
      clearTimeout(fallback);
      assert(!waited, "the dial returned before the proxy answered");
      assert(duplex.accepted, "an early dial reports its verdict later");
      verdict.resolve(5); // connection refused
      const refusal = await duplex.accepted.then(() => undefined, (e) => e);
      assert(refusal instanceof DialError);
      assertEquals(refusal.reason, "refused");
      const read = await duplex.readable.getReader().read().then(() => undefined, (e) => e);
      assert(read instanceof DialError && read.reason === "refused", "the readable errors too");
    } finally {
      await dialer.close?.();
    }
  },
});

Deno.test({
  name:
    "socks upstream: an early dial takes a connection to the proxy opened ahead by the previous one",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using proxy = scriptedProxy(() => Promise.resolve(0));
    const dialer = createSocksUpstreamDialer({ hostname: "127.0.0.1", port: proxy.port });
    try {
      const first = await dialer.dial(target, { ...options(), early: true });
      const served = (duplex: Duplex) =>
        duplex.readable.getReader().read().then((r) => Number(text(r.value).split(" ")[1]));
      const firstIndex = await served(first);
      for (let i = 0; i < 100 && proxy.accepted.length < 2; i++) await delay(10);
      const before = proxy.accepted.length;
      assert(before >= 2, "connections are opened ahead without a dial");
      const second = await dialer.dial(target, { ...options(), early: true });
      const secondIndex = await served(second);
      assert(secondIndex < before && secondIndex !== firstIndex, "it was opened before the dial");
      assertEquals(proxy.requests[secondIndex], [5, 1, 0, 5, 1, 0, 1, 10, 1, 2, 3, 0x1f, 0x90]);
      first.abort();
      second.abort();
    } finally {
      await dialer.close?.();
    }
  },
});

const text = (bytes?: Uint8Array) => new TextDecoder().decode(bytes);
const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
