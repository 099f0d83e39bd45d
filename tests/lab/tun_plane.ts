/**
 * Data-plane fixture run inside a lab namespace (benchmarks and lab tests): local servers (sink on
 * 9000, source on 9001, echo on 9002, a slow reader on 9003 that takes 1 byte per ms for 2 s, then
 * drains) and the TUN data plane with a router mapping every VIP to 127.0.0.1 through the direct
 * dialer. Prints READY when up.
 */
import { DEFAULT_BUSY_POLL_US, startTunDataPlane } from "../../core/net/bridge/data_plane.ts";
import { Router } from "../../core/router.ts";
import { ipv4ToNumber } from "../../core/vip.ts";
import { createDirectDialer } from "../../plugins/direct/mod.ts";

const mtu = Number(Deno.args[0] ?? 1500);
const SOURCE_BYTES = Number(Deno.args[1] ?? 100_000_000);

function serve(port: number, handle: (conn: Deno.Conn) => Promise<void>) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port });
  (async () => {
    for await (const conn of listener) handle(conn).catch(() => {}).finally(() => conn.close());
  })();
}
const chunk = new Uint8Array(256 * 1024);
serve(9000, async (conn) => {
  const buffer = new Uint8Array(256 * 1024);
  while ((await conn.read(buffer)) !== null) { /* sink */ }
});
serve(9001, async (conn) => {
  let left = SOURCE_BYTES;
  while (left > 0) left -= await conn.write(chunk.subarray(0, Math.min(chunk.length, left)));
});
serve(9002, async (conn) => {
  (conn as Deno.TcpConn).setNoDelay(true);
  const buffer = new Uint8Array(64 * 1024);
  while (true) {
    const n = await conn.read(buffer);
    if (n === null) break;
    // write() may take fewer bytes than offered: loop, or the echo loses data.
    for (let off = 0; off < n;) off += await conn.write(buffer.subarray(off, n));
  }
});
serve(9003, async (conn) => {
  const one = new Uint8Array(1);
  const slowUntil = Date.now() + 2000;
  while (Date.now() < slowUntil) {
    if ((await conn.read(one)) === null) return;
    await new Promise((r) => setTimeout(r, 1));
  }
  const buffer = new Uint8Array(256 * 1024);
  while ((await conn.read(buffer)) !== null) { /* drain */ }
  await conn.write(new TextEncoder().encode("done"));
});
const router = new Router({
  resolvers: [{ name: "bench", resolveAddress: () => ({ kind: "host", host: "127.0.0.1" }) }],
  dialers: [createDirectDialer()],
});
await startTunDataPlane({
  network: { base: ipv4ToNumber("198.18.0.0")!, prefix: 16 },
  address: ipv4ToNumber("198.18.0.1")!,
  mtu,
  router,
  idleTimeoutMs: 0,
  receiveBuffer: 4 * 1024 * 1024,
  offload: Deno.env.get("K8STUN_LAB_OFFLOAD") !== "off", // "off" to compare without TUN offload
  sendBuffer: 4 * 1024 * 1024,
  // K8STUN_LAB_BUSY_POLL_US=0 compares with a loop that sleeps at once.
  busyPollMicros: Number(Deno.env.get("K8STUN_LAB_BUSY_POLL_US") ?? DEFAULT_BUSY_POLL_US),
});
console.log("READY");
