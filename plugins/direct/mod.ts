/**
 * The built-in direct dialer: connects `host` targets with a plain TCP connection from this
 * machine (ExternalName services, SOCKS/HTTP proxy targets outside the cluster, tests).
 */
import { type Dialer, DialError, type Duplex, type PluginModule } from "../../mod.ts";
import { connDuplex } from "../../core/stream/conn_duplex.ts";
import { ipv4ToNumber } from "../../core/vip.ts";

/** Builds the dialer. It accepts host targets. */
export function createDirectDialer(): Dialer {
  return {
    name: "direct",
    accepts: (target) => target.kind === "host",
    // An address is connected from the TUN's packet loop (docs/architecture.md, "Dialed from
    // the packet loop"); a name needs a lookup, which dial() does.
    socket: (target) =>
      target.kind === "host" && ipv4ToNumber(target.host) !== undefined
        ? { address: target.host, port: target.port }
        : undefined,
    async dial(target, { signal }): Promise<Duplex> {
      if (target.kind !== "host") throw new DialError("unreachable", "not a host target");
      try {
        const conn = await Deno.connect({ hostname: target.host, port: target.port, signal });
        conn.setNoDelay(true);
        return connDuplex(conn);
      } catch (error) {
        if (error instanceof Deno.errors.ConnectionRefused) {
          throw new DialError("refused", `${target.host}:${target.port} refused the connection`);
        }
        if (error instanceof Deno.errors.TimedOut) {
          throw new DialError("timeout", `${target.host}:${target.port} did not answer`);
        }
        throw new DialError(
          "unreachable",
          `${target.host}:${target.port}: ${(error as Error).message}`,
        );
      }
    },
  };
}

/** The dialer as a built-in plugin. */
export const directPlugin: PluginModule = {
  name: "direct",
  version: "builtin",
  apiVersion: 1,
  kinds: ["dialer"],
  priority: 110,
  setup: () => ({ dialers: [createDirectDialer()] }),
};
