/**
 * The data plane under load in a lab namespace, with real kernel TCP on the application side:
 * 500 concurrent connections of mixed sizes, and a slow reader behind the dialer (the app's window
 * must close while the pod is slow and reopen at once when it drains: within 300 ms), 1 GiB each
 * way byte-exact at MTU 1500 and 65520. Each test runs on both Linux backends: with offload
 * (virtio headers, TSO) and without (checksums in TypeScript, MTU-sized packets, as on macOS).
 */
import { assert, assertEquals, assertMatch } from "../assert.ts";
import { Lab, labUnavailable } from "../lab/lab.ts";
import { pseudoRandomBytes } from "../lab/pseudo_random.ts";

const here = (file: string) => new URL(file, import.meta.url).pathname;
const ignore = labUnavailable() !== undefined;

/** The two Linux backends: the value of K8STUN_LAB_OFFLOAD (tun_plane.ts). */
const BACKENDS = ["on", "off"] as const;
type Backend = typeof BACKENDS[number];

async function withPlane(
  backend: Backend,
  fn: (lab: Lab) => Promise<void>,
  mtu = 1500,
  through: "direct" | "socks5" = "direct",
): Promise<void> {
  await using lab = await Lab.create();
  const env: Record<string, string> = { K8STUN_LAB_OFFLOAD: backend };
  if (through === "socks5") {
    const proxy = lab.spawn(Deno.execPath(), ["run", "-A", here("../lab/socks5_server.ts")]);
    const port = (await proxy.waitForOutput(/READY (\d+)/, 30_000))[1];
    env.K8STUN_LAB_SOCKS_UPSTREAM = `127.0.0.1:${port}`;
  }
  const plane = lab.spawn(Deno.execPath(), [
    "run",
    "-A",
    here("../lab/tun_plane.ts"),
    String(mtu),
  ], { env });
  await plane.waitForOutput(/READY/, 30_000);
  await fn(lab);
}

async function client(lab: Lab, mode: string) {
  const out = await lab.run(Deno.execPath(), ["run", "-A", here("./lab_clients.ts"), mode], {
    timeoutMs: 120_000,
  });
  assertEquals(out.code, 0, out.stderr);
  return JSON.parse(out.stdout.trim().split("\n").at(-1)!);
}

for (const backend of BACKENDS) {
  Deno.test({
    name:
      `data plane (offload ${backend}): 500 concurrent connections of mixed sizes are byte-exact through the TUN`,
    ignore,
    sanitizeResources: false,
    sanitizeOps: false,
    async fn() {
      await withPlane(backend, async (lab) => {
        assertEquals((await client(lab, "concurrent")).ok, 500);
      });
    },
  });

  Deno.test({
    name:
      `data plane (offload ${backend}): a slow reader behind the dialer loses nothing and the ` +
      "transfer resumes at once when it drains",
    ignore,
    sanitizeResources: false,
    sanitizeOps: false,
    async fn() {
      await withPlane(backend, async (lab) => {
        const result = await client(lab, "slow");
        assertEquals(result.done, "done");
        // 5 s of 1 byte/ms, then the rest of 4 MiB. Resumed by an immediate window update,
        // bytes keep coming once the pod drains (the rest takes milliseconds on an idle machine);
        // waiting for the app's zero-window probes would leave gaps of 0.2 s, doubling.
        assert(
          result.gapMs < 300,
          `${result.gapMs} ms without bytes while draining (drain took ${result.drainMs} ms)`,
        );
        assert(result.ms >= 4_900, `only ${result.ms} ms: the pod was not slow`);
      });
    },
  });
}

Deno.test({
  name:
    "data plane: a port that accepted gets its next connections answered at once; once its pod is gone the first is reset, the next refused (docs/tcp.md §3.1)",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await withPlane("on", async (lab) => {
      const { steps } = await client(lab, "vanished");
      assertEquals(steps, ["echoed", "echoed", "reset", "refused"]);
    });
  },
});

Deno.test({
  name:
    "data plane through a SOCKS5 upstream, dialed from the packet loop (docs/architecture.md): 500 concurrent connections byte-exact; a refused CONNECT is a refusal, and a reset once answered early",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await withPlane(
      "on",
      async (lab) => {
        assertEquals((await client(lab, "concurrent")).ok, 500);
        const { steps } = await client(lab, "vanished");
        assertEquals(steps, ["echoed", "echoed", "reset", "refused"]);
      },
      1500,
      "socks5",
    );
  },
});

const GIB = pseudoRandomBytes(1024 * 1024 * 1024);

/**
 * 1 GiB to the echo pod and back at once, into a file (a reader as fast as the kernel's), then
 * hashed and compared with the hash of what was sent.
 */
async function echoGibByteExact(lab: Lab): Promise<void> {
  const expected = await lab.sh(`${GIB} | sha256sum`, 120_000);
  const file = `${lab.dir}/echoed`;
  const echoed = await lab.sh(
    `${GIB} | nc -N 198.18.0.2 9002 > ${file} && sha256sum < ${file}`,
    240_000,
  );
  await Deno.remove(file).catch(() => {});
  assertEquals(echoed.code, 0, echoed.stderr);
  assertMatch(expected.stdout, /^[0-9a-f]{64} /);
  assertEquals(echoed.stdout, expected.stdout);
}

for (const backend of BACKENDS) {
  for (const mtu of [1500, 65520]) {
    Deno.test({
      name: `data plane (offload ${backend}): 1 GiB each way through the TUN at MTU ${mtu}, ` +
        "byte-exact (SHA-256 compared)",
      ignore,
      sanitizeResources: false,
      sanitizeOps: false,
      fn: () => withPlane(backend, echoGibByteExact, mtu),
    });
  }
}

Deno.test({
  name: "data plane through a SOCKS5 upstream, dialed from the packet loop: 1 GiB each way at " +
    "MTU 1500, byte-exact (SHA-256 compared)",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () => withPlane("on", echoGibByteExact, 1500, "socks5"),
});
