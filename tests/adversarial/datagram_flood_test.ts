/**
 * A local program floods k8stun's DNS with datagrams the packet loop must hand to the main thread
 * (responses, not queries, and queries for cluster names that do not exist), far faster than the
 * main thread answers them. Before k8stun bounded them, such a flood grew its memory by some
 * 60 MiB a second (the datagrams queued in the packet loop) and left DNS unanswered for seconds
 * after it. Now the loop drops the responses itself, lets a few hundred queries wait for the main
 * thread and drops the rest (core/net/packet_loop/datagram_quota.ts): memory stays bounded, the
 * drops are counted in /metrics, and DNS and connections work again at once.
 */
import { assert, assertEquals, assertMatch } from "../assert.ts";
import { labUnavailable } from "../lab/lab.ts";
import { CurlLoop, labWithResolver, RESOLVER, ResourceWatch, startDemo } from "./harness.ts";

const ignore = labUnavailable() !== undefined;
const API_PORT = "8797";
const FLOOD_SECONDS = 10;

/**
 * Sends datagrams to `server`:53 for `seconds` from a non-blocking socket, as fast as libc's
 * sendto goes: every other one a 1,400-byte DNS response (QR set: never forwarded), the others a
 * query for a new name in the demo namespace (a cluster name: the main thread's). Prints `SENT n`.
 */
const FLOODER = `
const libc = Deno.dlopen("libc.so.6", {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  sendto: { parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"], result: "isize" },
});
const [server, seconds] = [Deno.args[0], Number(Deno.args[1])];
const fd = libc.symbols.socket(2, 2 | 0o4000, 0);
const address = new Uint8Array(16);
address.set([2, 0, 0, 53, ...server.split(".").map(Number)]);
const response = new Uint8Array(1400);
response.set([0x12, 0x34, 0x81, 0x80, 0, 1]);
const encoder = new TextEncoder();
let sent = 0;
const end = Date.now() + seconds * 1000;
for (let i = 0; Date.now() < end; i++) {
  for (let j = 0; j < 500; j++) {
    let datagram = response;
    if (j % 2 === 1) {
      const name = ["x" + i + "-" + j, "demo"].map((l) => encoder.encode(l))
        .flatMap((l) => [l.length, ...l]);
      datagram = new Uint8Array([j >> 8, j & 0xff, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, ...name, 0, 0, 1, 0, 1]);
    }
    if (libc.symbols.sendto(fd, datagram, BigInt(datagram.length), 0, address, 16) > 0) sent++;
  }
}
console.log("SENT " + sent);
`;

Deno.test({
  name:
    "adversarial dns: a flood of datagrams for the main thread is dropped past a quota and counted — memory stays flat, DNS and connections work right after",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using lab = await labWithResolver("ndots:1 timeout:1 attempts:2");
    const k8stun = await startDemo(lab, ["--http", API_PORT]);
    assertMatch(k8stun.output, /now reach k8stun through/);
    const watch = ResourceWatch.start(k8stun.pid);
    const browsing = CurlLoop.start(lab);
    const floods = [0, 1].map(() =>
      lab.spawn(Deno.execPath(), ["eval", FLOODER, RESOLVER, String(FLOOD_SECONDS)])
    );
    const sent = [];
    for (const flood of floods) {
      sent.push(Number((await flood.waitForOutput(/SENT (\d+)/, 60_000))[1]));
    }
    const during = await browsing.stop();
    const bounds = watch.check("a datagram flood", { maxRssMiB: 400, maxFds: 200 });
    assert(bounds.fds > 0);

    // Right after the flood: a cluster name, a forwarded name and a connection, each at once.
    const started = performance.now();
    const cluster = await lab.run("dig", ["+short", "+tries=1", "+time=2", "hello.demo"]);
    assertMatch(cluster.stdout.trim(), /^198\.1[89]\./, "a cluster name right after the flood");
    const publicName = await lab.run("dig", [
      "+short",
      "+tries=1",
      "+time=2",
      "www.public-example.com",
    ]);
    assertEquals(publicName.stdout.trim(), "203.0.113.7");
    const curl = await lab.run("curl", ["-sS", "--max-time", "3", "http://hello.demo/"]);
    assertEquals(curl.code, 0, `curl right after the flood: ${curl.stderr}`);
    const afterMs = Math.round(performance.now() - started);

    const metrics = (await lab.run("curl", ["-s", `http://127.0.0.1:${API_PORT}/metrics`])).stdout;
    const dropped = Number(
      /^k8stun_tun_packets_dropped_total\{reason="datagram_overload"\} (\d+)$/m.exec(metrics)?.[1],
    );
    console.log(
      `[datagram flood] sent ${sent.join(" + ")} in ${FLOOD_SECONDS} s, ${dropped} dropped by ` +
        `k8stun; curls during it: ${during.ok} ok, ${during.failed} failed; DNS and curl after ` +
        `it took ${afterMs} ms`,
    );
    assert(dropped > 0, `no drop counted in /metrics:\n${metrics}`);
  },
});
