/**
 * proxy-url: parsing, and tunnels through an HTTP CONNECT proxy (RFC 9110 §9.3.6) and a SOCKS5
 * proxy (RFC 1928, RFC 1929) written here, on loopback, to an echo server and a TLS echo server.
 */
import { assert, assertEquals, assertMatch, assertRejects } from "../assert.ts";
import {
  openProxyTunnel,
  parseProxyUrl,
  type ProxyEndpoint,
  ProxyUrlError,
} from "../../core/k8s/proxy_tunnel.ts";
import { noDelayOf, TcpState } from "../../ffi/linux/socket_nodelay.ts";
import { generateSimTls } from "../../sim/tls.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** What a test closes at its end: listeners and connections. */
interface Closer {
  close(): void;
}

/** Listeners, connections and their tasks, all closed and awaited when the test ends. */
class Scene implements AsyncDisposable {
  readonly #closers = new Set<Closer>();
  readonly #tasks: Promise<unknown>[] = [];

  keep<T extends Closer>(closer: T): T {
    this.#closers.add(closer);
    return closer;
  }

  run(task: Promise<unknown>): void {
    this.#tasks.push(task.catch(() => {}));
  }

  /** A listener on a free loopback port whose connections go to `handle`. */
  serve(handle: (conn: Deno.TcpConn) => Promise<void>): number {
    const listener = this.keep(Deno.listen({ hostname: "127.0.0.1", port: 0 }));
    this.run((async () => {
      for await (const conn of listener) {
        this.keep(conn);
        this.run(handle(conn).finally(() => closeQuietly(conn)));
      }
    })());
    return listener.addr.port;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    // Tasks may open connections while others close: repeat until nothing is left.
    while (this.#closers.size > 0 || this.#tasks.length > 0) {
      for (const closer of this.#closers) closeQuietly(closer);
      this.#closers.clear();
      await Promise.all(this.#tasks.splice(0));
    }
  }
}

function closeQuietly(closer: Closer): void {
  try {
    closer.close();
  } catch {
    // closed already
  }
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let done = 0; done < bytes.length;) done += await conn.write(bytes.subarray(done));
}

/** Copies `from` to `to` until the end of `from`, then half-closes `to`. */
async function pump(from: Deno.Conn, to: Deno.Conn): Promise<void> {
  const buffer = new Uint8Array(4096);
  try {
    for (let n; (n = await from.read(buffer)) !== null;) await writeAll(to, buffer.subarray(0, n));
    await to.closeWrite();
  } catch {
    // one side closed
  }
}

/** Reads exact amounts, keeping what arrived beyond them. */
class Reader {
  #buffered: Uint8Array<ArrayBuffer> = new Uint8Array(0);
  constructor(readonly conn: Deno.Conn) {}

  async exactly(n: number): Promise<Uint8Array> {
    while (this.#buffered.length < n) {
      const chunk = new Uint8Array(4096);
      const read = await this.conn.read(chunk);
      if (read === null) throw new Error("closed early");
      this.#buffered = concat(this.#buffered, chunk.subarray(0, read));
    }
    const out = this.#buffered.slice(0, n);
    this.#buffered = this.#buffered.slice(n);
    return out;
  }

  /** Up to and including the first empty line. */
  async head(): Promise<string> {
    for (;;) {
      const end = decoder.decode(this.#buffered).indexOf("\r\n\r\n");
      if (end >= 0) return decoder.decode(await this.exactly(end + 4));
      const chunk = new Uint8Array(4096);
      const read = await this.conn.read(chunk);
      if (read === null) throw new Error("closed early");
      this.#buffered = concat(this.#buffered, chunk.subarray(0, read));
    }
  }

  rest(): Uint8Array {
    return this.#buffered;
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** Waits for the peer to close (the read ends or fails). */
async function untilClosed(conn: Deno.Conn): Promise<void> {
  const buffer = new Uint8Array(1024);
  try {
    while (await conn.read(buffer) !== null) {
      // discard
    }
  } catch {
    // reset
  }
}

function echoServer(scene: Scene): number {
  return scene.serve((conn) => pump(conn, conn));
}

/** A TLS echo server for localhost; its CA is returned to trust. */
async function tlsEchoServer(scene: Scene): Promise<{ port: number; caPem: string }> {
  const tls = await generateSimTls();
  const listener = scene.keep(
    Deno.listenTls({ hostname: "127.0.0.1", port: 0, cert: tls.certPem, key: tls.keyPem }),
  );
  scene.run((async () => {
    for await (const conn of listener) {
      scene.keep(conn);
      scene.run(pump(conn, conn).finally(() => closeQuietly(conn)));
    }
  })());
  return { port: listener.addr.port, caPem: tls.caPem };
}

/** Connects to the target of a CONNECT request line or a SOCKS request, and relays. */
async function relay(scene: Scene, conn: Deno.Conn, port: number, early: Uint8Array) {
  const upstream = scene.keep(await Deno.connect({ hostname: "127.0.0.1", port }));
  try {
    await writeAll(upstream, early);
    await Promise.all([pump(conn, upstream), pump(upstream, conn)]);
  } finally {
    closeQuietly(upstream);
  }
}

interface HttpProxy {
  port: number;
  /** The request heads it received. */
  requests: string[];
  /** Settles when a connection it answered without relaying was closed by the client. */
  closed: Promise<void>;
}

/**
 * An HTTP CONNECT proxy that gives `answer` (a 200 by default, followed by `extra`), relays when
 * the answer is 2xx and nothing extra, and with `silent` never answers.
 */
function httpProxy(
  scene: Scene,
  options: { answer?: string; extra?: string; silent?: boolean } = {},
): HttpProxy {
  const requests: string[] = [];
  const closed = Promise.withResolvers<void>();
  const port = scene.serve(async (conn) => {
    const reader = new Reader(conn);
    const head = await reader.head();
    requests.push(head);
    if (options.silent) {
      await untilClosed(conn);
      closed.resolve();
      return;
    }
    const answer = options.answer ?? "HTTP/1.1 200 Connection established\r\n\r\n";
    await writeAll(conn, encoder.encode(answer + (options.extra ?? "")));
    const target = /^CONNECT [^ ]+:(\d+) HTTP\/1\.1\r\n/.exec(head);
    if (/^HTTP\/1\.[01] 2\d\d /m.test(answer) && !options.extra && target) {
      await relay(scene, conn, Number(target[1]), reader.rest());
    } else {
      await untilClosed(conn);
      closed.resolve();
    }
  });
  return { port, requests, closed: closed.promise };
}

interface SocksProxy {
  port: number;
  /** What each client offered, sent as credentials, and asked for. */
  seen: { methods: number[]; username?: string; password?: string; host?: string }[];
  closed: Promise<void>;
}

/**
 * A SOCKS5 server (RFC 1928) that takes no authentication, or username/password (RFC 1929) when
 * `credentials` are set, connects IPv4 targets on loopback, and answers `reply` (0 by default).
 */
function socksProxy(
  scene: Scene,
  options: { credentials?: [string, string]; reply?: number; extra?: number[] } = {},
): SocksProxy {
  const seen: SocksProxy["seen"] = [];
  const closed = Promise.withResolvers<void>();
  const port = scene.serve(async (conn) => {
    const reader = new Reader(conn);
    const [, count] = await reader.exactly(2);
    const record: SocksProxy["seen"][number] = { methods: [...await reader.exactly(count)] };
    seen.push(record);
    const method = options.credentials ? 2 : 0;
    if (!record.methods.includes(method)) {
      await writeAll(conn, new Uint8Array([5, 0xff]));
      return;
    }
    await writeAll(conn, new Uint8Array([5, method]));
    if (options.credentials) {
      const [, userLength] = await reader.exactly(2);
      record.username = decoder.decode(await reader.exactly(userLength));
      const [passLength] = await reader.exactly(1);
      record.password = decoder.decode(await reader.exactly(passLength));
      const ok = record.username === options.credentials[0] &&
        record.password === options.credentials[1];
      await writeAll(conn, new Uint8Array([1, ok ? 0 : 1]));
      if (!ok) {
        await untilClosed(conn);
        closed.resolve();
        return;
      }
    }
    const [, command, , type] = await reader.exactly(4);
    assertEquals(command, 1);
    record.host = type === 1
      ? [...await reader.exactly(4)].join(".")
      : decoder.decode(await reader.exactly((await reader.exactly(1))[0]));
    const [high, low] = await reader.exactly(2);
    const reply = options.reply ?? 0;
    const answer = new Uint8Array([5, reply, 0, 1, 127, 0, 0, 1, 0, 0, ...options.extra ?? []]);
    if (reply !== 0 || options.extra) {
      await writeAll(conn, answer);
      await untilClosed(conn);
      closed.resolve();
      return;
    }
    const upstream = scene.keep(
      await Deno.connect({ hostname: "127.0.0.1", port: high * 256 + low }),
    );
    await writeAll(conn, answer);
    try {
      await writeAll(upstream, reader.rest());
      await Promise.all([pump(conn, upstream), pump(upstream, conn)]);
    } finally {
      closeQuietly(upstream);
    }
  });
  return { port, seen, closed: closed.promise };
}

/** Writes `text` and reads it back. */
async function roundTrip(conn: Deno.Conn, text: string): Promise<string> {
  await writeAll(conn, encoder.encode(text));
  const buffer = new Uint8Array(1024);
  let got = "";
  while (got.length < text.length) {
    const n = await conn.read(buffer);
    if (n === null) break;
    got += decoder.decode(buffer.subarray(0, n));
  }
  return got;
}

function httpEndpoint(port: number, extra: Partial<ProxyEndpoint> = {}): ProxyEndpoint {
  return { scheme: "http", hostname: "127.0.0.1", port, ...extra };
}

function refusal(url: string): ProxyUrlError {
  try {
    parseProxyUrl(url);
  } catch (error) {
    assert(error instanceof ProxyUrlError, `${url}: ${error}`);
    assert(!error.message.includes("\n"), "one line");
    return error;
  }
  throw new Error(`${url} was taken`);
}

Deno.test("proxy-url: schemes, default ports, IPv6 hosts and percent-decoded userinfo", () => {
  assertEquals(parseProxyUrl("http://proxy.example"), {
    scheme: "http",
    hostname: "proxy.example",
    port: 80,
  });
  assertEquals(parseProxyUrl(" HTTP://Proxy.Example:3128/ "), {
    scheme: "http",
    hostname: "proxy.example",
    port: 3128,
  });
  assertEquals(parseProxyUrl("socks5://10.0.0.1"), {
    scheme: "socks5",
    hostname: "10.0.0.1",
    port: 1080,
  });
  assertEquals(parseProxyUrl("socks5h://bastion:9050"), {
    scheme: "socks5",
    hostname: "bastion",
    port: 9050,
  });
  assertEquals(parseProxyUrl("http://[::1]:3128"), { scheme: "http", hostname: "::1", port: 3128 });
  assertEquals(parseProxyUrl("socks5://[fd00::1]"), {
    scheme: "socks5",
    hostname: "fd00::1",
    port: 1080,
  });
  assertEquals(parseProxyUrl("http://us%C3%A9r:p%40ss%3Aw%20rd@proxy:8080"), {
    scheme: "http",
    hostname: "proxy",
    port: 8080,
    username: "usér",
    password: "p@ss:w rd",
  });
  assertEquals(parseProxyUrl("socks5h://alice:s%2Fcret@bastion"), {
    scheme: "socks5",
    hostname: "bastion",
    port: 1080,
    username: "alice",
    password: "s/cret",
  });
  assertEquals(parseProxyUrl("http://alice@proxy"), {
    scheme: "http",
    hostname: "proxy",
    port: 80,
    username: "alice",
  });
});

Deno.test("proxy-url: https and unknown schemes are refused in one line without the password", () => {
  const https = refusal("https://alice:hunter2@proxy:443");
  assertEquals(https.name, "ProxyUrlError");
  assertMatch(https.message, /"https:\/\/alice:\*\*\*@proxy:443"/);
  assertMatch(https.message, /TLS to the proxy/);
  assertMatch(https.message, /use http:\/\/.* or socks5:\/\//);
  assert(!https.message.includes("hunter2"));

  assertMatch(refusal("socks4://proxy:1080").message, /scheme socks4/);
  assertMatch(refusal("ftp://bob:hunter2@proxy").message, /"ftp:\/\/bob:\*\*\*@proxy"/);
  for (
    const url of [
      "proxy:3128", // no scheme: "proxy" is taken for one
      "not a url",
      "http://bob:hunter2@",
      "http://bob:hunter2@proxy:3128/some/path",
      "http://bob:hunter2@proxy:0",
      "http://bob:hunter%zz@proxy:3128",
      "http://b%3Ab:hunter2@proxy:3128",
      "socks5://bob:hunter2@proxy:99999",
      `socks5://${"u".repeat(256)}:hunter2@proxy`,
    ]
  ) {
    const error = refusal(url);
    assert(!error.message.includes("hunter2"), error.message);
    assertMatch(error.message, /socks5:\/\//);
  }
});

Deno.test("proxy tunnel: CONNECT through an HTTP proxy carries bytes both ways", async () => {
  await using scene = new Scene();
  const echo = echoServer(scene);
  const proxy = httpProxy(scene);
  const conn = scene.keep(await openProxyTunnel(httpEndpoint(proxy.port), "127.0.0.1", echo));
  assertEquals(await roundTrip(conn, "hello through the tunnel"), "hello through the tunnel");
  if (Deno.build.os === "linux") {
    assertEquals(await noDelayOf(conn.localAddr.port, TcpState.ESTABLISHED), [true]);
  }
  assertEquals(proxy.requests, [
    `CONNECT 127.0.0.1:${echo} HTTP/1.1\r\nHost: 127.0.0.1:${echo}\r\n\r\n`,
  ]);
});

Deno.test("proxy tunnel: an IPv6 target goes in brackets", async () => {
  await using scene = new Scene();
  const proxy = httpProxy(scene, { answer: "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n" });
  const error = await openProxyTunnel(httpEndpoint(proxy.port), "fd00::1", 6443).catch((e) => e);
  assertMatch(error.message, /refused CONNECT \[fd00::1\]:6443: HTTP\/1\.1 403 Forbidden$/);
  assertEquals(proxy.requests, ["CONNECT [fd00::1]:6443 HTTP/1.1\r\nHost: [fd00::1]:6443\r\n\r\n"]);
  await proxy.closed;
});

Deno.test("proxy tunnel: Proxy-Authorization carries proxy-url's credentials", async () => {
  await using scene = new Scene();
  const echo = echoServer(scene);
  const proxy = httpProxy(scene);
  const endpoint = parseProxyUrl(`http://alice:p%40ss%20w@127.0.0.1:${proxy.port}`);
  const conn = scene.keep(await openProxyTunnel(endpoint, "127.0.0.1", echo));
  assertEquals(await roundTrip(conn, "ping"), "ping");
  assertEquals(proxy.requests, [
    `CONNECT 127.0.0.1:${echo} HTTP/1.1\r\nHost: 127.0.0.1:${echo}\r\n` +
    `Proxy-Authorization: Basic ${btoa("alice:p@ss w")}\r\n\r\n`,
  ]);
});

Deno.test("proxy tunnel: interim answers and bare LF line ends before the 200 are taken", async () => {
  await using scene = new Scene();
  const echo = echoServer(scene);
  const proxy = httpProxy(scene, {
    answer: "HTTP/1.1 100 Continue\n\nHTTP/1.0 200 OK\nVia: x\n\n",
  });
  const conn = scene.keep(await openProxyTunnel(httpEndpoint(proxy.port), "127.0.0.1", echo));
  assertEquals(await roundTrip(conn, "ping"), "ping");
});

Deno.test("proxy tunnel: a 407 says to put credentials in proxy-url", async () => {
  await using scene = new Scene();
  const proxy = httpProxy(scene, {
    answer:
      'HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="x"\r\n' +
      "Content-Length: 0\r\n\r\n",
  });
  await assertRejects(
    openProxyTunnel(httpEndpoint(proxy.port), "api.example", 6443),
    (error: Error) => {
      assertMatch(error.message, new RegExp(`^the HTTP proxy 127\\.0\\.0\\.1:${proxy.port} `));
      assertMatch(error.message, /refused CONNECT api\.example:6443/);
      assertMatch(error.message, /HTTP\/1\.1 407 Proxy Authentication Required/);
      assertMatch(error.message, /credentials: put them in proxy-url/);
      return true;
    },
  );
  await proxy.closed; // the connection was closed
  const withCredentials = httpEndpoint(proxy.port, { username: "alice", password: "hunter2" });
  await assertRejects(openProxyTunnel(withCredentials, "api.example", 6443), (error: Error) => {
    assertMatch(error.message, /refused the credentials in proxy-url/);
    assert(!error.message.includes("hunter2"));
    return true;
  });
});

Deno.test("proxy tunnel: bytes after the proxy's answer fail the tunnel", async () => {
  await using scene = new Scene();
  const proxy = httpProxy(scene, { extra: "SSH-2.0-x\r\n" });
  await assertRejects(openProxyTunnel(httpEndpoint(proxy.port), "api", 6443), (error: Error) => {
    assertMatch(error.message, /HTTP proxy 127\.0\.0\.1:\d+ sent 11 bytes after its answer/);
    return true;
  });
  await proxy.closed;
});

Deno.test("proxy tunnel: an answer that is not HTTP, or none, fails clearly", async () => {
  await using scene = new Scene();
  const garbage = httpProxy(scene, { answer: "SSH-2.0-OpenSSH\r\n\r\n" });
  await assertRejects(openProxyTunnel(httpEndpoint(garbage.port), "api", 6443), (error: Error) => {
    assertMatch(error.message, /answered CONNECT with no HTTP: SSH-2\.0-OpenSSH$/);
    return true;
  });
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const free = listener.addr.port;
  listener.close();
  await assertRejects(openProxyTunnel(httpEndpoint(free), "api", 6443), (error: Error) => {
    assertMatch(error.message, new RegExp(`^cannot reach the HTTP proxy 127\\.0\\.0\\.1:${free}`));
    return true;
  });
});

Deno.test("proxy tunnel: a proxy that never answers times out within timeoutMs", async () => {
  await using scene = new Scene();
  const proxy = httpProxy(scene, { silent: true });
  const started = performance.now();
  await assertRejects(
    openProxyTunnel(httpEndpoint(proxy.port), "api", 6443, { timeoutMs: 300 }),
    (error: Error) => {
      assertMatch(error.message, /HTTP proxy 127\.0\.0\.1:\d+ did not open a tunnel to api:6443/);
      assertMatch(error.message, /within 300 ms/);
      return true;
    },
  );
  const elapsed = performance.now() - started;
  assert(elapsed >= 250 && elapsed < 3000, `${elapsed} ms`);
  await proxy.closed;
  assertEquals(proxy.requests.length, 1);
});

Deno.test("proxy tunnel: a SOCKS5 proxy that never answers times out within timeoutMs", async () => {
  await using scene = new Scene();
  const closed = Promise.withResolvers<void>();
  const port = scene.serve(async (conn) => {
    await untilClosed(conn);
    closed.resolve();
  });
  const endpoint = parseProxyUrl(`socks5://127.0.0.1:${port}`);
  const started = performance.now();
  await assertRejects(
    openProxyTunnel(endpoint, "api", 6443, { timeoutMs: 200 }),
    (error: Error) => {
      assertMatch(error.message, /SOCKS5 proxy 127\.0\.0\.1:\d+ did not open a tunnel to api:6443/);
      assertMatch(error.message, /within 200 ms/);
      return true;
    },
  );
  const elapsed = performance.now() - started;
  assert(elapsed >= 150 && elapsed < 3000, `${elapsed} ms`);
  await closed.promise; // k8stun closed the connection
});

Deno.test("proxy tunnel: TLS runs over the tunnel with Deno.startTls", async () => {
  await using scene = new Scene();
  const server = await tlsEchoServer(scene);
  const proxy = httpProxy(scene);
  const tcp = await openProxyTunnel(httpEndpoint(proxy.port), "localhost", server.port);
  const tls = scene.keep(
    await Deno.startTls(tcp, { hostname: "localhost", caCerts: [server.caPem] }),
  );
  assertEquals(await roundTrip(tls, "over TLS"), "over TLS");
});

Deno.test("proxy tunnel: SOCKS5 without credentials", async () => {
  await using scene = new Scene();
  const echo = echoServer(scene);
  const proxy = socksProxy(scene);
  const endpoint = parseProxyUrl(`socks5://127.0.0.1:${proxy.port}`);
  const conn = scene.keep(await openProxyTunnel(endpoint, "127.0.0.1", echo));
  assertEquals(await roundTrip(conn, "hello, socks"), "hello, socks");
  assertEquals(proxy.seen, [{ methods: [0], host: "127.0.0.1" }]);
});

Deno.test("proxy tunnel: SOCKS5 with username and password", async () => {
  await using scene = new Scene();
  const echo = echoServer(scene);
  const proxy = socksProxy(scene, { credentials: ["alice", "s:cret"] });
  const endpoint = parseProxyUrl(`socks5h://alice:s%3Acret@127.0.0.1:${proxy.port}`);
  const conn = scene.keep(await openProxyTunnel(endpoint, "127.0.0.1", echo));
  assertEquals(await roundTrip(conn, "ping"), "ping");
  assertEquals(proxy.seen, [
    { methods: [2], username: "alice", password: "s:cret", host: "127.0.0.1" },
  ]);

  const wrong = parseProxyUrl(`socks5h://alice:hunter2@127.0.0.1:${proxy.port}`);
  await assertRejects(openProxyTunnel(wrong, "127.0.0.1", echo), (error: Error) => {
    assertMatch(error.message, /^the SOCKS5 proxy 127\.0\.0\.1:\d+ refused the tunnel/);
    assertMatch(error.message, /credentials/);
    assert(!error.message.includes("hunter2"));
    return true;
  });
  await proxy.closed;
});

Deno.test("proxy tunnel: a SOCKS5 refusal names the proxy and the reply", async () => {
  await using scene = new Scene();
  const proxy = socksProxy(scene, { reply: 5 });
  const endpoint = parseProxyUrl(`socks5://127.0.0.1:${proxy.port}`);
  await assertRejects(openProxyTunnel(endpoint, "api.example", 6443), (error: Error) => {
    assertMatch(
      error.message,
      /^the SOCKS5 proxy 127\.0\.0\.1:\d+ refused the tunnel to api\.example:6443/,
    );
    assertMatch(error.message, /answered 5/);
    assertMatch(error.message, /refused the connection/);
    return true;
  });
  await proxy.closed;
  assertEquals(proxy.seen, [{ methods: [0], host: "api.example" }]);

  // A server that wants credentials proxy-url does not have turns the greeting down.
  const picky = socksProxy(scene, { credentials: ["alice", "x"] });
  await assertRejects(
    openProxyTunnel(parseProxyUrl(`socks5://127.0.0.1:${picky.port}`), "api.example", 6443),
    (error: Error) => {
      assertMatch(error.message, /none of our methods/);
      return true;
    },
  );
});

Deno.test("proxy tunnel: bytes after a SOCKS5 reply fail the tunnel", async () => {
  await using scene = new Scene();
  const proxy = socksProxy(scene, { extra: [1, 2, 3] });
  const endpoint = parseProxyUrl(`socks5://127.0.0.1:${proxy.port}`);
  await assertRejects(openProxyTunnel(endpoint, "api", 6443), (error: Error) => {
    assertMatch(error.message, /SOCKS5 proxy 127\.0\.0\.1:\d+ sent 3 bytes after its reply/);
    return true;
  });
  await proxy.closed;
});
