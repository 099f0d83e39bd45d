/** Proxy mode against the simulated cluster, with real curl, raw SOCKS bytes and fuzzing. */
import { assert, assertEquals, assertMatch } from "../assert.ts";
import { BufferedConn } from "../../core/stream/buffered_conn.ts";
import { socks5Handshake } from "../../core/proxy/socks5.ts";
import { createSocksUpstreamDialer, parseSocksUpstream } from "../../plugins/socks_upstream/mod.ts";
import { proxyOverSim } from "./sim_proxy.ts";

async function curl(...args: string[]) {
  const out = await new Deno.Command("curl", {
    args: ["-s", "-m", "10", ...args],
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  return { code: out.code, stdout: new TextDecoder().decode(out.stdout) };
}

Deno.test({
  name: "proxy: curl reaches pods through SOCKS5 (names, short names, ClusterIP, pod IP) and HTTP",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using p = await proxyOverSim();
    assertMatch(
      (await curl("--socks5-hostname", p.socks, "http://hello.demo:80/")).stdout,
      /^hello from hello-/,
    );
    assertMatch(
      (await curl("-x", `socks5h://${p.socks}`, "http://hello/")).stdout,
      /^hello from hello-/,
    );
    const clusterIp = p.store.service("demo", "hello")!.clusterIP!;
    assertMatch(
      (await curl("-x", `socks5://${p.socks}`, `http://${clusterIp}/`)).stdout,
      /^hello from hello-/,
    );
    const podIp = p.store.pod("demo", "db-0")!.ip!;
    const nc = await new Deno.Command("sh", {
      args: ["-c", `printf x | nc -N -X 5 -x ${p.socks} ${podIp} 5432`],
      stdout: "piped",
    }).output();
    assertEquals(new TextDecoder().decode(nc.stdout), "db-0\nx");
    assertMatch(
      (await curl("-x", `http://${p.http}`, "http://hello.demo/")).stdout,
      /^hello from hello-/,
    );
    assertMatch(
      (await curl("-p", "-x", `http://${p.http}`, "http://hello.demo.svc.cluster.local/")).stdout,
      /^hello from hello-/,
    );
    assertEquals((await curl("--socks5-hostname", p.socks, "http://hello.demo:9999/")).code, 97);
    const pac = (await curl(`http://${p.http}/proxy.pac`)).stdout;
    assertMatch(pac, /function FindProxyForURL/);
  },
});

Deno.test({
  name: "proxy: credentials are enforced (RFC 1929 failure, HTTP 407)",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using p = await proxyOverSim({ username: "dev", password: "s3cret" });
    assertEquals(
      (await curl("-x", `socks5h://dev:wrong@${p.socks}`, "http://hello.demo/")).code,
      97,
    );
    assertMatch(
      (await curl("-x", `socks5h://dev:s3cret@${p.socks}`, "http://hello.demo/")).stdout,
      /^hello/,
    );
    const noAuth = await new Deno.Command("curl", {
      args: [
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-x",
        `http://${p.http}`,
        "http://hello.demo/",
      ],
      stdout: "piped",
    }).output();
    assertEquals(new TextDecoder().decode(noAuth.stdout), "407");
    assertMatch(
      (await curl("-x", `http://dev:s3cret@${p.http}`, "http://hello.demo/")).stdout,
      /^hello/,
    );
  },
});

Deno.test({
  name:
    "proxy: BIND and UDP ASSOCIATE get 'command not supported'; IPv6 'address type not supported'",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using p = await proxyOverSim();
    const port = Number(p.socks.split(":")[1]);
    for (const [command, type, expected] of [[2, 1, 7], [3, 1, 7], [1, 4, 8]]) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      await conn.write(new Uint8Array([5, 1, 0]));
      const buffer = new Uint8Array(64);
      await conn.read(buffer);
      const address = type === 1 ? [1, 2, 3, 4] : new Array(16).fill(0);
      await conn.write(new Uint8Array([5, command, 0, type, ...address, 0, 80]));
      const n = await conn.read(buffer);
      assert(n !== null && n >= 2);
      assertEquals(buffer[1], expected);
      conn.close();
    }
  },
});

Deno.test({
  name: "proxy: 200 concurrent proxied connections are byte-exact",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using p = await proxyOverSim();
    const port = Number(p.socks.split(":")[1]);
    const one = async (i: number) => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      const reader = new BufferedConn(conn, Date.now() + 30_000);
      await conn.write(new Uint8Array([5, 1, 0]));
      await reader.readExactly(2);
      const name = new TextEncoder().encode("echo.demo");
      await conn.write(new Uint8Array([5, 1, 0, 3, name.length, ...name, 0, 7]));
      const reply = await reader.readExactly(10);
      assertEquals(reply[1], 0);
      const payload = new TextEncoder().encode(`connection ${i} `.repeat(50 + i));
      await conn.write(payload);
      const echoed = await reader.readExactly(payload.length);
      conn.close();
      return new TextDecoder().decode(echoed) === new TextDecoder().decode(payload);
    };
    const results = await Promise.all(Array.from({ length: 200 }, (_, i) => one(i)));
    assertEquals(results.filter(Boolean).length, 200);
  },
});

/** A fake connection replaying fixed bytes, for handshake fuzzing. */
function fakeConn(input: Uint8Array): Deno.Conn {
  let offset = 0;
  return {
    read(buffer: Uint8Array) {
      if (offset >= input.length) return Promise.resolve(null);
      const n = Math.min(buffer.length, input.length - offset, 7);
      buffer.set(input.subarray(offset, offset + n));
      offset += n;
      return Promise.resolve(n);
    },
    write: (data: Uint8Array) => Promise.resolve(data.length),
  } as unknown as Deno.Conn;
}

Deno.test("proxy: 100,000 truncated or garbage SOCKS handshakes get a reply or an error, never a crash", async () => {
  let state = 7;
  const random = () => (state = (Math.imul(state, 1103515245) + 12345) >>> 0);
  const valid = new Uint8Array([
    5,
    1,
    0,
    5,
    1,
    0,
    3,
    9,
    ...new TextEncoder().encode("echo.demo"),
    0,
    7,
  ]);
  let completed = 0;
  for (let i = 0; i < 100_000; i++) {
    const input = i % 2
      ? valid.slice(0, random() % (valid.length + 1))
      : new Uint8Array(random() % 40);
    for (let j = 0; j < input.length; j++) {
      if (i % 2 === 0 || random() % 6 === 0) input[j] = random() & 0xff;
    }
    const reader = new BufferedConn(fakeConn(input), Date.now() + 1000);
    try {
      const result = await socks5Handshake(reader, undefined, { address: "127.0.0.1", port: 1 });
      if (result.ok) completed++;
    } catch (error) {
      assert(error instanceof Error);
    }
  }
  assert(completed > 0);
});

Deno.test({
  name: "proxy: the SOCKS5-upstream dialer reaches a pod through k8stun's own SOCKS listener",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using p = await proxyOverSim({ username: "u", password: "p" });
    const [hostname, port] = p.socks.split(":");
    const upstream = parseSocksUpstream(`u:p@${hostname}:${port}`);
    const dialer = createSocksUpstreamDialer(upstream);
    const pod = p.store.pod("demo", "db-1")!;
    const target = {
      kind: "pod" as const,
      namespace: "demo",
      name: "db-1",
      port: 5432,
      ip: pod.ip,
    };
    assert(await dialer.accepts(target));
    const duplex = await dialer.dial(target, {
      signal: new AbortController().signal,
      flow: { port: 5432, protocol: "tcp", front: "tun" },
    });
    const writer = duplex.writable.getWriter();
    await writer.write(new TextEncoder().encode("via-bastion"));
    await writer.close();
    assertEquals(await new Response(duplex.readable).text(), "db-1\nvia-bastion");
    const refused = await dialer.dial({ ...target, port: 1 }, {
      signal: new AbortController().signal,
      flow: { port: 1, protocol: "tcp", front: "tun" },
    }).catch((e) => e);
    assertEquals(refused.reason, "refused");
  },
});

Deno.test({
  name: "router: a pod that refuses is skipped for the next ready pod without the client noticing",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using p = await proxyOverSim();
    p.sim.faults.portForward("demo", "hello-7d9f-x2k4p", 8080, { kind: "refuse" });
    for (let i = 0; i < 6; i++) {
      const out = await curl("--socks5-hostname", p.socks, "http://hello.demo/");
      assertEquals(out.code, 0);
      assertMatch(out.stdout, /^hello from hello-7d9f-q8w3n /);
    }
  },
});
