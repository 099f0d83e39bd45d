/**
 * The lab's stand-in pods, run as a Worker of tun_plane.ts: a sink on 9000, a source of
 * `sourceBytes` on 9001, an echo on 9002, and on 9003 a slow reader that takes 1 byte per ms for
 * 5 s, then drains and answers "done <ms the drain took> <longest ms between reads>". Replies "listening" once all listen.
 */
/// <reference lib="deno.worker" />

function serve(port: number, handle: (conn: Deno.Conn) => Promise<void>) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port });
  (async () => {
    for await (const conn of listener) handle(conn).catch(() => {}).finally(() => conn.close());
  })();
}
const chunk = new Uint8Array(256 * 1024);
let sourceBytes = 0;
serve(9000, async (conn) => {
  const buffer = new Uint8Array(256 * 1024);
  while ((await conn.read(buffer)) !== null) { /* sink */ }
});
serve(9001, async (conn) => {
  let left = sourceBytes;
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
  const slowUntil = Date.now() + 5000;
  while (Date.now() < slowUntil) {
    if ((await conn.read(one)) === null) return;
    await new Promise((r) => setTimeout(r, 1));
  }
  // The longest wait for bytes once draining: a stalled window shows as a gap here.
  const drainStart = performance.now();
  let last = drainStart;
  let longestGap = 0;
  const buffer = new Uint8Array(256 * 1024);
  while ((await conn.read(buffer)) !== null) {
    const now = performance.now();
    longestGap = Math.max(longestGap, now - last);
    last = now;
  }
  const drainMs = Math.round(performance.now() - drainStart);
  await conn.write(new TextEncoder().encode(`done ${drainMs} ${Math.round(longestGap)}`));
});

self.onmessage = (event: MessageEvent<{ sourceBytes: number }>) => {
  sourceBytes = event.data.sourceBytes;
  self.postMessage("listening");
};
