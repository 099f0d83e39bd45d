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
import { connDuplex } from "../../core/stream/conn_duplex.ts";
import { ipv4ToNumber } from "../../core/vip.ts";
import { negotiate } from "../../core/proxy/socks5_negotiate.ts";
import { Spares } from "./spares.ts";

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

/** Builds the dialer. */
export function createSocksUpstreamDialer(upstream: SocksUpstream): Dialer {
  const connect = async (signal?: AbortSignal) => {
    const conn = await Deno.connect({ hostname: upstream.hostname, port: upstream.port, signal });
    // As the direct dialer: the handshake's small writes and the app's go out at once (Nagle
    // would hold each behind the previous one's ACK).
    conn.setNoDelay(true);
    return conn;
  };
  const spares = new Spares(connect);
  return {
    name: "socks-upstream",
    accepts: (target: DialTarget) => target.kind === "host" || target.ip !== undefined,
    // Without credentials, with the proxy given by address, the TUN's packet loop connects and
    // sends the CONNECT itself (docs/architecture.md, "Dialed from the packet loop").
    socket: (target: DialTarget) =>
      upstream.username === undefined && ipv4ToNumber(upstream.hostname) !== undefined
        ? {
          address: upstream.hostname,
          port: upstream.port,
          socks5Connect: {
            host: target.kind === "host" ? target.host : target.ip!,
            port: target.port,
          },
        }
        : undefined,
    async dial(target, { signal, early }): Promise<Duplex> {
      const quick = early === true && upstream.username === undefined;
      const conn = (quick ? spares.take() : undefined) ??
        await connect(signal).catch((e) => {
          throw new DialError(
            "unreachable",
            `SOCKS upstream ${upstream.hostname}:${upstream.port}: ${e.message}`,
          );
        });
      if (!quick) return connDuplex(conn, await negotiate(conn, upstream, target));
      // Early (DialOptions.early): the proxy took the TCP connection, and its CONNECT reply
      // decides later — reads and writes wait for it, a refusal rejects `accepted` and errors the
      // readable, so the caller replays the app's first bytes on the next candidate. The app's
      // connection then costs no round trip through the proxy to its target. The request goes
      // out in the next task, after the caller's accept: on loopback a write runs the proxy's
      // receive path inside the call.
      const handshake = new Promise((resolve) => setTimeout(resolve, 0))
        .then(() => negotiate(conn, upstream, target));
      const accepted = handshake.then(() => {});
      accepted.catch(() => {}); // reported through the readable as well: never unhandled
      return { ...connDuplex(conn, handshake), accepted };
    },
    close: () => spares.close(),
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
