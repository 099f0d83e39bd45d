/**
 * Nothing lost around a handshake: a server that speaks first (its banner may share a segment with
 * the handshake's reply) and a client that pipelines its first bytes with its request, through
 * every dialer and front of proxy mode.
 */
import { assertEquals, assertMatch } from "../assert.ts";
import { BufferedConn } from "../../core/stream/buffered_conn.ts";
import { createSocksUpstreamDialer, parseSocksUpstream } from "../../plugins/socks_upstream/mod.ts";
import { proxyOverSim } from "./sim_proxy.ts";

const CONNECTIONS = 40;
const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
const bytes = (s: string) => new TextEncoder().encode(s);
const deadline = () => Date.now() + 10_000;
const signal = () => new AbortController().signal;

/** A SOCKS5 server that writes its CONNECT reply and the far end's banner in one segment. */
function greetingSocksServer(banner: string) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  (async () => {
    for await (const conn of listener) {
      (async () => {
        const reader = new BufferedConn(conn, deadline());
        await reader.readExactly(3); // version 5, one method, "no authentication"
        await conn.write(new Uint8Array([5, 0]));
        await reader.readExactly(10); // CONNECT to an IPv4 address
        await conn.write(new Uint8Array([5, 0, 0, 1, 10, 0, 0, 9, 0, 80, ...bytes(banner)]));
        await conn.closeWrite();
        await reader.readExactly(1).catch(() => {}); // until the client closes
      })().catch(() => {}).finally(() => conn.close());
    }
  })().catch(() => {});
  return { port: (listener.addr as Deno.NetAddr).port, close: () => listener.close() };
}

/** A server that greets every connection with `banner`, then closes. */
function bannerServer(banner: string) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  (async () => {
    for await (const conn of listener) {
      conn.write(bytes(banner)).then(() => conn.closeWrite()).catch(() => {})
        .finally(() => setTimeout(() => conn.close(), 2000));
    }
  })().catch(() => {});
  return { port: (listener.addr as Deno.NetAddr).port, close: () => listener.close() };
}

/** Opens a SOCKS5 CONNECT to `host:port` and returns the reader past the reply. */
async function socksConnect(proxyPort: number, host: string, port: number, first = "") {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxyPort });
  const reader = new BufferedConn(conn, deadline());
  const name = bytes(host);
  const address = /^\d+\.\d+\.\d+\.\d+$/.test(host)
    ? [1, ...host.split(".").map(Number)]
    : [3, name.length, ...name];
  const request = [5, 1, 0, ...address, port >> 8, port & 255];
  await conn.write(new Uint8Array([5, 1, 0, ...request, ...bytes(first)]));
  await reader.readExactly(2);
  const reply = await reader.readExactly(10);
  assertEquals(reply[1], 0, `SOCKS reply for ${host}:${port}`);
  return { conn, reader };
}

/** Sends an HTTP CONNECT to `target` and returns the reader past the response head. */
async function httpConnect(proxyPort: number, target: string, first = "") {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxyPort });
  const reader = new BufferedConn(conn, deadline());
  await conn.write(bytes(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n${first}`));
  const head = text(await reader.readUntil(bytes("\r\n\r\n"), 4096));
  assertMatch(head, /^HTTP\/1\.1 200 /);
  return { conn, reader };
}

async function countExact(expected: string, one: () => Promise<string>): Promise<number> {
  const got = await Promise.all(Array.from({ length: CONNECTIONS }, one));
  return got.filter((banner) => banner === expected).length;
}

Deno.test("socks upstream: a banner sent in the same segment as the CONNECT reply reaches the app, 40 of 40", async () => {
  const upstream = greetingSocksServer("220 welcome\r\n");
  try {
    const dialer = createSocksUpstreamDialer(parseSocksUpstream(`127.0.0.1:${upstream.port}`));
    const exact = await countExact("220 welcome\r\n", async () => {
      const duplex = await dialer.dial({ kind: "host", host: "10.0.0.9", port: 80 }, {
        signal: signal(),
        flow: { port: 80, protocol: "tcp", front: "tun" },
      });
      const banner = await new Response(duplex.readable).text();
      duplex.abort();
      return banner;
    });
    assertEquals(exact, CONNECTIONS);
  } finally {
    upstream.close();
  }
});

Deno.test({
  name:
    "proxy: a pod's banner arrives byte-exact through the SOCKS5 front, HTTP CONNECT and the SOCKS5-upstream dialer, 40 connections each",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using p = await proxyOverSim();
    const socksPort = Number(p.socks.split(":")[1]);
    const httpPort = Number(p.http.split(":")[1]);
    const podIp = p.store.pod("demo", "db-0")!.ip!;
    const viaSocks = await countExact("db-0\n", async () => {
      const { conn, reader } = await socksConnect(socksPort, podIp, 5432);
      const banner = text(await reader.readExactly(5));
      conn.close();
      return banner;
    });
    assertEquals(viaSocks, CONNECTIONS, "SOCKS5 front");
    const viaConnect = await countExact("db-0\n", async () => {
      const { conn, reader } = await httpConnect(httpPort, `${podIp}:5432`);
      const banner = text(await reader.readExactly(5));
      conn.close();
      return banner;
    });
    assertEquals(viaConnect, CONNECTIONS, "HTTP CONNECT front");
    const dialer = createSocksUpstreamDialer(parseSocksUpstream(p.socks));
    const viaUpstream = await countExact("db-0\n", async () => {
      const duplex = await dialer.dial({ kind: "host", host: podIp, port: 5432 }, {
        signal: signal(),
        flow: { port: 5432, protocol: "tcp", front: "tun" },
      });
      const reader = duplex.readable.getReader();
      let banner = "";
      while (banner.length < 5) {
        const { value, done } = await reader.read();
        if (done) break;
        banner += text(value);
      }
      duplex.abort();
      return banner;
    });
    assertEquals(viaUpstream, CONNECTIONS, "SOCKS5-upstream dialer");
  },
});

Deno.test({
  name: "proxy: a local server's banner arrives byte-exact through the pass-through path, 40 of 40",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using p = await proxyOverSim(undefined, { allowLocal: true });
    const server = bannerServer("SSH-2.0-banner\r\n");
    try {
      const socksPort = Number(p.socks.split(":")[1]);
      const exact = await countExact("SSH-2.0-banner\r\n", async () => {
        const { conn, reader } = await socksConnect(socksPort, "127.0.0.1", server.port);
        const banner = text(await reader.readExactly(16));
        conn.close();
        return banner;
      });
      assertEquals(exact, CONNECTIONS);
    } finally {
      server.close();
    }
  },
});

Deno.test({
  name:
    "proxy: bytes a client pipelines with its SOCKS5 request, CONNECT request or absolute-form request reach the server",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using p = await proxyOverSim();
    const socksPort = Number(p.socks.split(":")[1]);
    const httpPort = Number(p.http.split(":")[1]);
    const payload = "pipelined-before-the-reply ".repeat(40);

    const socks = await socksConnect(socksPort, "echo.demo", 7, payload);
    assertEquals(text(await socks.reader.readExactly(payload.length)), payload, "SOCKS5");
    socks.conn.close();

    const connect = await httpConnect(httpPort, "echo.demo:7", payload);
    assertEquals(text(await connect.reader.readExactly(payload.length)), payload, "CONNECT");
    connect.conn.close();

    // The echo pod returns the request as the proxy forwarded it: origin form, body intact.
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: httpPort });
    const reader = new BufferedConn(conn, deadline());
    await conn.write(bytes(
      `POST http://echo.demo:7/submit?x=1 HTTP/1.1\r\nHost: echo.demo:7\r\n` +
        `Content-Length: ${payload.length}\r\n\r\n${payload}`,
    ));
    const head = text(await reader.readUntil(bytes("\r\n\r\n"), 4096));
    assertMatch(head, /^POST \/submit\?x=1 HTTP\/1\.1\r\n/);
    assertEquals(text(await reader.readExactly(payload.length)), payload, "absolute-form body");
    conn.close();
  },
});
