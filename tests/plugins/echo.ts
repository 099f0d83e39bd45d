/** A loopback TCP echo server and a built-in-style dialer for it, for plugin tests. */
import type { Duplex, PluginModule } from "../../mod.ts";

/** Starts an echo server on an ephemeral loopback port. */
export function startEchoServer(): Promise<{ port: number } & AsyncDisposable> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  (async () => {
    for await (const conn of listener) {
      conns.add(conn);
      conn.readable.pipeTo(conn.writable).catch(() => {}).finally(() => conns.delete(conn));
    }
  })().catch(() => {});
  return Promise.resolve({
    port: (listener.addr as Deno.NetAddr).port,
    [Symbol.asyncDispose]() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch {
          // closed already
        }
      }
      return Promise.resolve();
    },
  });
}

/** A built-in plugin whose dialer connects host targets on `port` over loopback TCP. */
export function echoDialer(port: number): PluginModule {
  return {
    name: "test-echo",
    version: "0",
    apiVersion: 1,
    kinds: ["dialer"],
    setup: () => ({
      dialers: [{
        name: "test-echo",
        accepts: (t) => t.kind === "host" && t.port === port,
        async dial(target): Promise<Duplex> {
          const conn = await Deno.connect({ hostname: "127.0.0.1", port: target.port });
          return {
            readable: conn.readable,
            writable: new WritableStream({
              write: async (chunk) => {
                await conn.write(chunk);
              },
              close: () => conn.closeWrite(),
            }),
            abort: () => {
              try {
                conn.close();
              } catch {
                // closed already
              }
            },
          };
        },
      }],
    }),
  };
}
