/**
 * A TCP relay on loopback that holds every chunk for `oneWayMs` in each direction, keeping
 * order: a stand-in for the round trip to a remote API server (this kernel has no netem qdisc).
 * The local connect succeeds at once, so the client's first bytes are held one extra round trip,
 * which is what the TCP handshake would have cost.
 */
import { serveTcp, type TcpServer } from "../../sim/tcp_server.ts";

export type DelayProxy = TcpServer;

export function startDelayProxy(targetPort: number, oneWayMs: number): DelayProxy {
  const pipe = async (from: Deno.Conn, to: Deno.Conn, notBefore: number) => {
    const queue: { due: number; chunk: Uint8Array }[] = [];
    let wake: (() => void) | undefined;
    let ended = false;
    const writing = (async () => {
      for (;;) {
        const next = queue.shift();
        if (!next) {
          if (ended) break;
          await new Promise<void>((r) => wake = r);
          continue;
        }
        const wait = next.due - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        for (let off = 0; off < next.chunk.length;) off += await to.write(next.chunk.subarray(off));
      }
      await to.closeWrite().catch(() => {});
    })().catch(() => {});
    const buffer = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        const n = await from.read(buffer);
        if (n === null) break;
        const due = Math.max(performance.now(), notBefore) + oneWayMs;
        queue.push({ due, chunk: buffer.slice(0, n) });
        wake?.();
      }
    } catch {
      // reset: the writer ends too
    }
    ended = true;
    wake?.();
    await writing;
  };
  return serveTcp(async (client) => {
    const upstream = await Deno.connect({ hostname: "127.0.0.1", port: targetPort });
    try {
      client.setNoDelay(true);
      upstream.setNoDelay(true);
      const handshakeDone = performance.now() + 2 * oneWayMs;
      await Promise.all([pipe(client, upstream, handshakeDone), pipe(upstream, client, 0)]);
    } finally {
      try {
        upstream.close();
      } catch {
        // closed
      }
    }
  });
}
