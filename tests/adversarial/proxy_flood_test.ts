/**
 * Hostile clients against `k8stun proxy` (a separate process on loopback, over the simulated
 * cluster): 2,000 idle connections from one address, a slowloris handshake, and descriptor
 * exhaustion. Each prints the process's RSS and descriptors.
 */
import { assert, assertEquals, assertMatch } from "../assert.ts";
import { DEMO_FIXTURE, startSimCluster } from "../../sim/mod.ts";
import { MAIN, ResourceWatch, sampleResources } from "./harness.ts";

const FLOOD = 2_000;
const encoder = new TextEncoder();

/** `k8stun proxy` with SOCKS5 and HTTP listeners on free loopback ports. */
async function startProxyProcess() {
  const dir = await Deno.makeTempDir({ prefix: "k8stun-proxy-flood-" });
  const sim = await startSimCluster({ fixture: DEMO_FIXTURE });
  await sim.writeKubeconfig(`${dir}/kubeconfig`, "demo");
  const [socks, http] = [freePort(), freePort()];
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      MAIN,
      "proxy",
      "--kubeconfig",
      `${dir}/kubeconfig`,
      "--listen-socks",
      `127.0.0.1:${socks}`,
      "--listen-http",
      `127.0.0.1:${http}`,
      "--plugin-dir",
      `${dir}/no-plugins`,
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  while (!seen.includes("is ready")) {
    const { value, done } = await output.read();
    if (done) throw new Error(`k8stun proxy exited: ${seen}`);
    seen += value;
  }
  (async () => {
    while (!(await output.read()).done); // keep the pipe drained
  })().catch(() => {});
  child.stderr.pipeTo(new WritableStream()).catch(() => {});
  return {
    pid: child.pid,
    socks,
    http,
    async [Symbol.asyncDispose]() {
      child.kill("SIGKILL");
      await child.status;
      await sim.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

function freePort(): number {
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  return port;
}

/** A legitimate client: curl through the SOCKS port, from `source` (any 127.x address). */
async function curlThroughSocks(socks: number, source = "127.0.0.1"): Promise<string> {
  const out = await new Deno.Command("curl", {
    args: [
      "-s",
      "-m",
      "5",
      "--interface",
      source,
      "-x",
      `socks5h://127.0.0.1:${socks}`,
      "http://hello.demo/",
    ],
    stdout: "piped",
    stderr: "null",
  }).output();
  return new TextDecoder().decode(out.stdout);
}

/** Opens `count` connections that send nothing; `open()` counts those the server kept. */
async function idleFlood(port: number, count: number) {
  const conns: Deno.Conn[] = [];
  const closedByServer = new Set<Deno.Conn>();
  for (let i = 0; i < count; i += 100) {
    const batch = await Promise.all(
      Array.from(
        { length: Math.min(100, count - i) },
        () =>
          Deno.connect({ hostname: "127.0.0.1", port, signal: AbortSignal.timeout(3000) }).catch(
            () => undefined,
          ),
      ),
    );
    for (const conn of batch) {
      if (!conn) continue;
      conns.push(conn);
      conn.read(new Uint8Array(16)).catch(() => null).then(() => closedByServer.add(conn));
    }
  }
  return {
    opened: conns.length,
    open: () => conns.length - closedByServer.size,
    close() {
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

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

Deno.test({
  name:
    "adversarial proxy: 2,000 idle connections from one address are capped and a client from another address still gets through",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using k8stun = await startProxyProcess();
    const watch = ResourceWatch.start(k8stun.pid);
    const flood = await idleFlood(k8stun.socks, FLOOD);
    try {
      await sleep(300);
      console.log(`[flood] ${flood.opened} connected, ${flood.open()} kept by k8stun`);
      assert(flood.open() <= 256, `${flood.open()} idle connections kept from one address`);
      for (let i = 0; i < 5; i++) {
        assertMatch(await curlThroughSocks(k8stun.socks, "127.0.0.2"), /^hello from hello-/);
      }
    } finally {
      flood.close();
    }
    watch.check("2,000 idle SOCKS connections", { maxRssMiB: 512, maxFds: 1024 });
  },
});

Deno.test({
  name: "adversarial proxy: a slowloris sending 1 byte/s of handshake is cut at the deadline",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using k8stun = await startProxyProcess();
    const name = encoder.encode("hello.demo.svc.cluster.local");
    const handshakes = {
      socks: new Uint8Array([5, 1, 0, 5, 1, 0, 3, name.length, ...name, 0, 80]),
      http: encoder.encode("CONNECT hello.demo:80 HTTP/1.1\r\nHost: hello.demo:80\r\n\r\n"),
    };
    const cutAfter = async (port: number, handshake: Uint8Array) => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      const started = Date.now();
      let cut = false;
      (async () => {
        const buffer = new Uint8Array(64);
        while (await conn.read(buffer) !== null); // replies to the greeting are not a cut
      })().catch(() => {}).finally(() => cut = true);
      for (let i = 0; i < handshake.length - 1 && !cut && Date.now() - started < 8_000; i++) {
        await conn.write(handshake.subarray(i, i + 1)).catch(() => cut = true);
        for (let t = 0; t < 10 && !cut; t++) await sleep(100);
      }
      conn.close();
      return cut ? Date.now() - started : Infinity;
    };
    const [socks, http] = await Promise.all([
      cutAfter(k8stun.socks, handshakes.socks),
      cutAfter(k8stun.http, handshakes.http),
    ]);
    console.log(`[slowloris] SOCKS5 cut after ${socks} ms, HTTP after ${http} ms`);
    assert(socks < 6_000, `the SOCKS5 slowloris held on for ${socks} ms`);
    assert(http < 6_000, `the HTTP slowloris held on for ${http} ms`);
  },
});

Deno.test({
  name:
    "adversarial proxy: after a flood exhausts k8stun's descriptors, the SOCKS5 listener accepts again",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using k8stun = await startProxyProcess();
    assertMatch(await curlThroughSocks(k8stun.socks), /^hello from hello-/);
    const limit = sampleResources(k8stun.pid).fds + 40;
    const prlimit = await new Deno.Command("prlimit", {
      args: ["--pid", String(k8stun.pid), `--nofile=${limit}:${limit}`],
    }).output();
    assertEquals(prlimit.code, 0, "prlimit");
    const watch = ResourceWatch.start(k8stun.pid);
    const flood = await idleFlood(k8stun.socks, 300);
    await sleep(500);
    const during = sampleResources(k8stun.pid).fds;
    console.log(`[exhaustion] limit ${limit} descriptors, ${during} open during the flood`);
    assert(during >= limit - 2, `the flood did not exhaust the descriptors (${during} open)`);
    flood.close();
    await sleep(1_000);
    let answer = "";
    for (let i = 0; i < 3 && !/^hello/.test(answer); i++) {
      answer = await curlThroughSocks(k8stun.socks);
    }
    assertMatch(answer, /^hello from hello-/, "the listener accepts again after the flood");
    // Descriptors opened before the limit was lowered may lie above it.
    watch.check("descriptor exhaustion", { maxRssMiB: 512, maxFds: limit + 8 });
  },
});
