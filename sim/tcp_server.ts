/**
 * A TCP server on 127.0.0.1 that keeps track of its connections: each one is handed to `handle`
 * and closed when `handle` settles, and `close()` stops accepting and closes every connection
 * still open (a deleted pod's clients see their connection end, as in a real cluster).
 */

import { GuardedListener, type ListenerLimits } from "../core/guarded_listener.ts";

/** A running server. */
export interface TcpServer {
  port: number;
  close(): void;
}

/**
 * Any local user can reach the simulated cluster's ports, and the demo runs as root with the
 * system's DNS pointed at it: its servers take connections through the guarded accept loop too
 * (core/guarded_listener.ts), capped within the descriptor limit and alive through EMFILE. They
 * have no handshake: a connection counts as established at once.
 */
export const SIM_LIMITS: ListenerLimits = {
  maxConnections: 4096,
  maxPerSource: 4096, // the sim's own port-forward dials come from 127.0.0.1 too
  maxHandshakesPerSource: 4096,
  handshakeMs: 60_000,
};

/** Serves `handle` on a free loopback port. */
export function serveTcp(handle: (conn: Deno.TcpConn) => Promise<unknown>): TcpServer {
  const listener = new GuardedListener(Deno.listen({ hostname: "127.0.0.1", port: 0 }), {
    name: "simulated pod",
    limits: SIM_LIMITS,
    handle: (guarded) => {
      guarded.established();
      return handle(guarded.conn as Deno.TcpConn).then(() => {});
    },
  });
  return { port: listener.addr.port, close: () => listener.close() };
}
