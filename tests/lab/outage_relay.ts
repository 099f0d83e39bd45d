/**
 * A TCP relay on loopback between k8stun and an API server that a test can take down the ways a
 * laptop loses its cluster: `refuse` (the server is gone: connections reset, new ones refused),
 * `blackhole` (a dead Wi-Fi or a suspended VPN: connections accepted and kept open, nothing
 * passes either way) and back to `forward`. The port stays the same throughout. With
 * `idleKillMs` it also behaves like a proxy or NAT with an idle timeout: a connection that carried
 * no bytes either way for that long is closed.
 */
export type RelayMode = "forward" | "refuse" | "blackhole";

/** Optional behaviour of {@link startOutageRelay}. */
export interface OutageRelayOptions {
  /** Close a relayed connection after this many ms without a byte either way. */
  idleKillMs?: number;
}

/** A running relay. */
export interface OutageRelay extends AsyncDisposable {
  port: number;
  /** Connections accepted so far. */
  accepted(): number;
  setMode(mode: RelayMode): void;
  /** Connections closed for being idle (`idleKillMs`). */
  idleKilled(): number;
  close(): Promise<void>;
}

/**
 * Starts a relay to `target` on 127.0.0.1, forwarding. `listen` creates its listener (e.g. inside
 * a lab namespace with `inNamespace`); it is called again, with the same port, after `refuse`.
 */
export function startOutageRelay(
  target: { hostname: string; port: number },
  listen: (port: number) => Deno.Listener = (port) => Deno.listen({ hostname: "127.0.0.1", port }),
  options: OutageRelayOptions = {},
): OutageRelay {
  let mode: RelayMode = "forward";
  let accepted = 0;
  let idleKilled = 0;
  let listener: Deno.Listener | undefined;
  let port = 0;
  const open = new Set<Deno.Conn>();
  const held = new Set<Deno.Conn>();
  const close = (conn: Deno.Conn) => {
    open.delete(conn);
    held.delete(conn);
    try {
      conn.close();
    } catch {
      // already closed
    }
  };
  const pipe = async (from: Deno.Conn, to: Deno.Conn, activity: () => void) => {
    const buffer = new Uint8Array(64 * 1024);
    try {
      while (true) {
        const n = await from.read(buffer);
        if (n === null) break;
        // In a black hole the bytes are swallowed: both ends see a silent connection.
        if (mode === "blackhole") continue;
        activity();
        for (let off = 0; off < n;) off += await to.write(buffer.subarray(off, n));
      }
    } catch {
      // reset
    }
    close(from);
    close(to);
  };
  const serve = async (current: Deno.Listener) => {
    for await (const client of current) {
      accepted++;
      if (mode === "blackhole") {
        held.add(client);
        continue;
      }
      try {
        const upstream = await Deno.connect({ transport: "tcp", ...target });
        open.add(client).add(upstream);
        let idleTimer: ReturnType<typeof setTimeout> | undefined;
        const activity = () => {
          if (options.idleKillMs === undefined) return;
          clearTimeout(idleTimer);
          idleTimer = setTimeout(() => {
            idleKilled++;
            close(client);
            close(upstream);
          }, options.idleKillMs);
        };
        activity();
        const done = () => clearTimeout(idleTimer);
        void pipe(client, upstream, activity).finally(done);
        void pipe(upstream, client, activity).finally(done);
      } catch {
        close(client);
      }
    }
  };
  const start = () => {
    listener = listen(port);
    port = (listener.addr as Deno.NetAddr).port;
    void serve(listener).catch(() => {});
  };
  start();
  return {
    get port() {
      return port;
    },
    accepted: () => accepted,
    idleKilled: () => idleKilled,
    setMode(next) {
      if (next === mode) return;
      if (next === "refuse") {
        listener?.close();
        listener = undefined;
        for (const conn of [...open, ...held]) close(conn);
      } else if (mode === "refuse") {
        start();
      }
      if (next === "forward") { for (const conn of held) close(conn); }
      mode = next;
    },
    close() {
      listener?.close();
      for (const conn of [...open, ...held]) close(conn);
      return Promise.resolve();
    },
    [Symbol.asyncDispose]() {
      return this.close();
    },
  };
}

/** A relay in front of an API server at `url` (a simulated cluster's), forwarding at first. */
export function relayToApi(
  url: string,
  listen?: (port: number) => Deno.Listener,
): OutageRelay {
  return startOutageRelay({ hostname: "127.0.0.1", port: Number(new URL(url).port) }, listen);
}
