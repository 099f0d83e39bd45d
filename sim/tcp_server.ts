/**
 * A TCP server on 127.0.0.1 that keeps track of its connections: each one is handed to `handle`
 * and closed when `handle` settles, and `close()` stops accepting and closes every connection
 * still open (a deleted pod's clients see their connection end, as in a real cluster).
 */

/** A running server. */
export interface TcpServer {
  port: number;
  close(): void;
}

/** Serves `handle` on a free loopback port. */
export function serveTcp(handle: (conn: Deno.TcpConn) => Promise<unknown>): TcpServer {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.TcpConn>();
  (async () => {
    for await (const conn of listener) {
      conns.add(conn);
      handle(conn).catch(() => {}).finally(() => {
        conns.delete(conn);
        closeQuietly(conn);
      });
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    close() {
      listener.close();
      for (const conn of conns) closeQuietly(conn);
    },
  };
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // closed already
  }
}
