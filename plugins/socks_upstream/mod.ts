/**
 * The SOCKS5-upstream dialer: sends cluster traffic through an existing SOCKS5 proxy (a bastion
 * inside the cluster network, or another k8stun's proxy). Pod targets are asked for by pod IP,
 * host targets by name or address (RFC 1928 CONNECT; RFC 1929 credentials when configured).
 * Configured with `--socks-upstream [user:pass@]host:port`.
 */
import {
  type Dialer,
  DialError,
  type DialTarget,
  type Duplex,
  type PluginModule,
} from "../../mod.ts";
import { BufferedConn } from "../../core/proxy/buffered_conn.ts";

/** Where the upstream proxy is. */
export interface SocksUpstream {
  hostname: string;
  port: number;
  username?: string;
  password?: string;
}

/** Parses `[user:pass@]host:port`. */
export function parseSocksUpstream(value: string): SocksUpstream {
  const m = /^(?:([^:@]+):([^@]*)@)?([^:@]+):(\d+)$/.exec(value.trim());
  if (!m || Number(m[4]) > 65535) {
    throw new Error(`--socks-upstream "${value}" is not [user:pass@]host:port`);
  }
  return { username: m[1], password: m[2], hostname: m[3], port: Number(m[4]) };
}

const FAILURES: Record<number, ConstructorParameters<typeof DialError>[0]> = {
  2: "forbidden",
  3: "unreachable",
  4: "unreachable",
  5: "refused",
  6: "timeout",
};

/** Builds the dialer. */
export function createSocksUpstreamDialer(upstream: SocksUpstream): Dialer {
  return {
    name: "socks-upstream",
    accepts: (target: DialTarget) => target.kind === "host" || target.ip !== undefined,
    async dial(target, { signal }): Promise<Duplex> {
      const conn = await Deno.connect({ hostname: upstream.hostname, port: upstream.port, signal })
        .catch((e) => {
          throw new DialError(
            "unreachable",
            `SOCKS upstream ${upstream.hostname}:${upstream.port}: ${e.message}`,
          );
        });
      // As the direct dialer: the handshake's small writes and the app's go out at once (Nagle
      // would hold each behind the previous one's ACK).
      conn.setNoDelay(true);
      try {
        const reader = new BufferedConn(conn, Date.now() + 10_000);
        const auth = upstream.username !== undefined;
        const host = target.kind === "host" ? target.host : target.ip!;
        const port = target.port;
        const address = /^\d+\.\d+\.\d+\.\d+$/.test(host)
          ? [1, ...host.split(".").map(Number)]
          : [3, new TextEncoder().encode(host).length, ...new TextEncoder().encode(host)];
        const request = [5, 1, 0, ...address, port >> 8, port & 0xff];
        // Without credentials the only method offered is "none", so the server either takes it
        // or refuses and closes: the request can follow the greeting in the same segment, one
        // round trip instead of two (RFC 1928 §3, §4).
        await conn.write(new Uint8Array(auth ? [5, 1, 2] : [5, 1, 0, ...request]));
        const [, method] = await reader.readExactly(2);
        if (method === 0xff) {
          throw new DialError("forbidden", "the SOCKS upstream accepts none of our methods");
        }
        if (method !== (auth ? 2 : 0)) {
          throw new DialError("error", `the SOCKS upstream chose method ${method}, not offered`);
        }
        if (auth) {
          const user = new TextEncoder().encode(upstream.username ?? "");
          const pass = new TextEncoder().encode(upstream.password ?? "");
          await conn.write(new Uint8Array([1, user.length, ...user, pass.length, ...pass]));
          const [, status] = await reader.readExactly(2);
          if (status !== 0) {
            throw new DialError("forbidden", "the SOCKS upstream rejected the credentials");
          }
        }
        if (auth) await conn.write(new Uint8Array(request));
        const [, reply, , type] = await reader.readExactly(4);
        await reader.readExactly(
          type === 1 ? 6 : type === 4 ? 18 : (await reader.readExactly(1))[0] + 2,
        );
        if (reply !== 0) {
          throw new DialError(
            FAILURES[reply] ?? "error",
            `SOCKS upstream answered ${reply} for ${host}:${port}`,
          );
        }
        return reader.duplex();
      } catch (error) {
        conn.close();
        throw error instanceof DialError ? error : new DialError("error", (error as Error).message);
      }
    },
  };
}

/** The dialer as a plugin, ahead of the port-forward dialer. */
export function socksUpstreamPlugin(upstream: SocksUpstream): PluginModule {
  return {
    name: "socks-upstream",
    version: "builtin",
    apiVersion: 1,
    kinds: ["dialer"],
    priority: 90,
    setup: () => ({ dialers: [createSocksUpstreamDialer(upstream)] }),
  };
}
