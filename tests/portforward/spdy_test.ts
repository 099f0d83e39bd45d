/** SPDY/3.1 port-forward: framing, header compression, and the dialer against the simulator. */
import { ApiAccess } from "../../core/k8s/api_access.ts";
import { assert, assertEquals } from "../assert.ts";
import {
  controlFrame,
  dataFrame,
  FrameParser,
  MAX_FRAME_LENGTH,
  PING,
  SYN_STREAM,
  synStreamPayload,
} from "../../core/k8s/spdy/frames.ts";
import { HeaderBlockEncoder, HeaderDecompressor } from "../../core/k8s/spdy/headers.ts";
import zlib from "node:zlib";
import { Buffer } from "node:buffer";
// @ts-types="../../core/k8s/spdy/dictionary.d.ts"
import spdyDictionaries from "spdy-dictionary";
import { DEMO_FIXTURE, startSimCluster } from "../../sim/mod.ts";
import { createPortForwardDialer } from "../../plugins/portforward/mod.ts";
import type { Dialer } from "../../mod.ts";
import { BufferedConn } from "../../core/stream/buffered_conn.ts";

const spdyDictionary = (spdyDictionaries as Record<string, Uint8Array>)["3"];

/** Payload sizes for the concurrent tests: different, and crossing frame sizes. */
const SIZES = (i: number) => 20_000 + i * 3_331;

const options = () => ({
  signal: new AbortController().signal,
  flow: { port: 1, protocol: "tcp" as const, front: "tun" as const },
});

/** Sends `size` random bytes to the demo echo pod and checks they come back byte for byte. */
async function echoRoundTrip(dialer: Dialer, size: number): Promise<boolean> {
  const duplex = await dialer.dial({
    kind: "pod",
    namespace: "demo",
    name: "echo-5c6b-m9t2z",
    port: 7007,
  }, options());
  const payload = new Uint8Array(size);
  for (let i = 0; i < size; i += 65536) {
    crypto.getRandomValues(payload.subarray(i, Math.min(size, i + 65536)));
  }
  const writer = duplex.writable.getWriter();
  const sent = writer.write(payload).then(() => writer.close());
  const echoed = new Uint8Array(await new Response(duplex.readable).arrayBuffer());
  await sent;
  return echoed.length === payload.length && echoed.every((b, j) => b === payload[j]);
}

Deno.test("spdy: frames split or coalesced anywhere parse back byte for byte", () => {
  const frames = [
    controlFrame(SYN_STREAM, 0, synStreamPayload(1, new Uint8Array([1, 2, 3]))),
    dataFrame(3, 0, new Uint8Array(5000).fill(7)),
    controlFrame(PING, 0, new Uint8Array([0, 0, 0, 9])),
    dataFrame(3, 1, new Uint8Array(0)),
  ];
  const all = new Uint8Array(frames.reduce((s, f) => s + f.length, 0));
  let offset = 0;
  for (const f of frames) {
    all.set(f, offset);
    offset += f.length;
  }
  let state = 5;
  for (let round = 0; round < 200; round++) {
    const parser = new FrameParser();
    const got = [];
    for (let i = 0; i < all.length;) {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      const n = 1 + (state % 700);
      got.push(...parser.push(all.subarray(i, i + n)));
      i += n;
    }
    assertEquals(got.length, 4);
    assertEquals(got[0].kind === "control" && got[0].type, SYN_STREAM);
    assertEquals(got[1].kind === "data" && got[1].data.length, 5000);
    assertEquals(got[3].kind === "data" && got[3].flags, 1);
  }
});

Deno.test("spdy: header blocks (stored deflate blocks) inflate with the SPDY dictionary, as zlib's own do", async () => {
  const encoder = new HeaderBlockEncoder();
  const inflate = new HeaderDecompressor();
  try {
    for (let i = 0; i < 20; i++) {
      const headers: [string, string][] = [
        ["streamtype", i % 2 ? "data" : "error"],
        ["port", "8080"],
        ["requestid", String(i)],
      ];
      const block = encoder.encode(headers);
      if (i === 0) {
        // The zlib header real zlib writes with the SPDY/3 dictionary (CPython's
        // `zlib.compressobj(zdict=…)` gives these bytes): FDICT and DICTID 0xe3c6a7c2.
        assertEquals([...block.subarray(0, 6)], [0x78, 0xbb, 0xe3, 0xc6, 0xa7, 0xc2]);
      }
      assertEquals([...await inflate.decompress(block)], headers);
      // Each block ends with Z_SYNC_FLUSH's empty stored block: Go's inflater (the kubelet's)
      // hands out a stored block's bytes only once the next block starts.
      assertEquals([...block.subarray(-5)], [0, 0, 0, 0xff, 0xff]);
    }
  } finally {
    inflate.close();
  }
});

Deno.test("spdy: a header block that inflates past 256 KiB (a decompression bomb) is refused while it inflates, and its stream ends", async () => {
  const encoder = new HeaderBlockEncoder();
  const inflate = new HeaderDecompressor();
  try {
    const ok = encoder.encode([["port", "80"]]);
    assertEquals([...await inflate.decompress(ok)], [["port", "80"]]);
    // 64 MiB of zeros deflated to a few KiB, on a zlib stream of its own.
    const deflater = zlib.createDeflate({ dictionary: Buffer.from(spdyDictionary) });
    const bomb = await new Promise<Uint8Array>((resolve) => {
      const chunks: Uint8Array[] = [];
      deflater.on("data", (c: Uint8Array) => chunks.push(c));
      deflater.write(new Uint8Array(64 * 1024 * 1024));
      deflater.flush(zlib.constants.Z_SYNC_FLUSH, () => resolve(Buffer.concat(chunks)));
    });
    deflater.destroy();
    assert(bomb.length < MAX_FRAME_LENGTH, `the bomb fits one frame (${bomb.length} bytes)`);
    const fresh = new HeaderDecompressor();
    try {
      let message = "";
      await fresh.decompress(bomb).catch((e) => message = e.message);
      assertEquals(message, "SPDY header block inflates past 256 KiB");
      await fresh.decompress(ok).catch((e) => message = e.message);
      assertEquals(message, "the SPDY header stream ended after a block inflated too far");
    } finally {
      fresh.close();
    }
  } finally {
    inflate.close();
  }
});

Deno.test({
  name: "spdy: 20 concurrent connections share one SPDY-over-WebSocket session, byte-exact",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using sim = await startSimCluster({ fixture: DEMO_FIXTURE });
    const kc = ApiAccess.fromText(sim.kubeconfig());
    const dialer = createPortForwardDialer({ access: kc });
    try {
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) => echoRoundTrip(dialer, SIZES(i))),
      );
      assertEquals(results.filter(Boolean).length, 20);
      assertEquals(sim.upgrades().get("SPDY/3.1+portforward.k8s.io"), 1, "one session for all 20");
    } finally {
      await dialer.close?.();
    }
  },
});

Deno.test({
  name: "spdy: a refused port fails that stream as 'refused'; the session keeps serving others",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using sim = await startSimCluster({ fixture: DEMO_FIXTURE });
    const kc = ApiAccess.fromText(sim.kubeconfig());
    const dialer = createPortForwardDialer({ access: kc });
    try {
      const refused = await dialer.dial({
        kind: "pod",
        namespace: "demo",
        name: "db-0",
        port: 9999,
      }, options())
        .catch((e) => e);
      assertEquals(refused.reason, "refused");
      const ok = await dialer.dial(
        { kind: "pod", namespace: "demo", name: "db-0", port: 5432 },
        options(),
      );
      const writer = ok.writable.getWriter();
      await writer.write(new TextEncoder().encode("still-here"));
      await writer.close();
      assertEquals(
        await new Response(ok.readable).text(),
        "db-0\nstill-here",
        "half-close carried by FIN",
      );
      assertEquals(sim.upgrades().get("SPDY/3.1+portforward.k8s.io"), 1);
    } finally {
      await dialer.close?.();
    }
  },
});

Deno.test({
  name:
    "spdy: without the tunnel (clusters before 1.31) the dialer opens one session with a direct Upgrade: SPDY/3.1",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using sim = await startSimCluster({ fixture: DEMO_FIXTURE, tunnel: false });
    const kc = ApiAccess.fromText(sim.kubeconfig());
    const dialer = createPortForwardDialer({ access: kc });
    try {
      for (let i = 0; i < 2; i++) {
        const duplex = await dialer.dial({
          kind: "pod",
          namespace: "demo",
          name: "db-1",
          port: 5432,
        }, options());
        const reader = duplex.readable.getReader();
        const { value } = await reader.read();
        assertEquals(new TextDecoder().decode(value), "db-1\n");
        duplex.abort();
      }
      const results = await Promise.all(
        Array.from({ length: 5 }, (_, i) => echoRoundTrip(dialer, SIZES(i))),
      );
      assertEquals(results.filter(Boolean).length, 5, "every echo byte-exact");
      assertEquals(sim.upgrades().get("spdy/3.1 direct"), 2, "one session per pod for all 7");
      assert(!sim.upgrades().has("v4.channel.k8s.io"));
      assert(!sim.upgrades().has("SPDY/3.1+portforward.k8s.io"));
    } finally {
      await dialer.close?.();
    }
  },
});

Deno.test({
  name:
    "spdy: 20 concurrent connections stay byte-exact when the tunnel's messages are split and coalesced at random",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using sim = await startSimCluster({ fixture: DEMO_FIXTURE, refragmentTunnel: true });
    const kc = ApiAccess.fromText(sim.kubeconfig());
    const dialer = createPortForwardDialer({ access: kc });
    try {
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) => echoRoundTrip(dialer, SIZES(i))),
      );
      assertEquals(results.filter(Boolean).length, 20);
    } finally {
      await dialer.close?.();
    }
  },
});

Deno.test({
  name: "spdy: the simulator serves a direct Upgrade: SPDY/3.1 (kubectl ≤ 1.30) with stream pairs",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using sim = await startSimCluster({ fixture: DEMO_FIXTURE });
    const port = Number(new URL(sim.url).port);
    const conn = await Deno.connectTls({ hostname: "127.0.0.1", port, caCerts: [sim.caPem!] });
    await conn.write(new TextEncoder().encode(
      "POST /api/v1/namespaces/demo/pods/db-0/portforward HTTP/1.1\r\nHost: x\r\n" +
        `Authorization: Bearer ${sim.token}\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n` +
        "X-Stream-Protocol-Version: portforward.k8s.io\r\n\r\n",
    ));
    const reader = new BufferedConn(conn, Date.now() + 10_000);
    const head = new TextDecoder().decode(
      await reader.readUntil(new TextEncoder().encode("\r\n\r\n"), 4096),
    );
    assert(head.startsWith("HTTP/1.1 101"), head);
    const encoder = new HeaderBlockEncoder();
    const block = (type: string) =>
      encoder.encode([["streamtype", type], ["port", "5432"], ["requestid", "0"]]);
    await conn.write(controlFrame(SYN_STREAM, 0, synStreamPayload(1, block("error"))));
    await conn.write(controlFrame(SYN_STREAM, 0, synStreamPayload(3, block("data"))));
    const parser = new FrameParser();
    let banner = "";
    const first = reader.rest();
    const frames = parser.push(first);
    const buffer = new Uint8Array(4096);
    while (!banner.includes("db-0")) {
      for (const f of frames.splice(0)) {
        if (f.kind === "data" && f.streamId === 3) banner += new TextDecoder().decode(f.data);
      }
      if (banner.includes("db-0")) break;
      const n = await conn.read(buffer);
      if (n === null) break;
      frames.push(...parser.push(buffer.subarray(0, n)));
    }
    assertEquals(banner, "db-0\n");
    assertEquals(sim.upgrades().get("spdy/3.1 direct"), 1);
    conn.close();
  },
});

Deno.test({
  name:
    "spdy: a port-forward upgrade that never answers fails the dial within the handshake limit, never a hang",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using sim = await startSimCluster({ fixture: DEMO_FIXTURE });
    sim.faults.stallUpgrades = true;
    const kc = ApiAccess.fromText(sim.kubeconfig());
    const dialer = createPortForwardDialer({ access: kc, handshakeTimeoutMs: 500 });
    try {
      const started = Date.now();
      const error = await dialer.dial(
        { kind: "pod", namespace: "demo", name: "db-0", port: 5432 },
        options(),
      )
        .catch((e) => e);
      assertEquals(error.reason, "timeout");
      assert(Date.now() - started < 2_000, `failed after ${Date.now() - started} ms`);
    } finally {
      await dialer.close?.();
    }
  },
});
