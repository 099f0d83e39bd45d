/**
 * Keeps the packet loop's own DNS forwarding (core/net/packet_loop/dns_forwarder.ts) in step with
 * tun_route's diversion: it forwards only while every system resolver is bound to the device that
 * reaches it (the same resolvers, in the same order, as the main thread's upstream), and it learns
 * the names to leave to the main thread — the cluster domain, `svc`, `pod` and the namespaces —
 * whenever the cluster's namespaces change. Without that (forward mode, a resolver not bound, a
 * loop that opens no sockets) the main thread answers every query, as before.
 */
import type { NameClaims } from "../core/dns/claimed_names.ts";
import { splitServer, type UpstreamResolver } from "../core/dns/upstream.ts";
import type { DnsForwarding } from "../core/net/packet_loop/dns_forwarder.ts";
import type { TunDataPlane } from "../core/net/data_plane/data_plane.ts";
import { ipv4ToNumber } from "../core/vip.ts";

export class LoopDnsForwarding {
  /** Resolver → the device its queries leave by. */
  readonly #bound = new Map<string, string>();
  /** What the loop was told last (JSON), so an unchanged configuration is not sent again. */
  #sent = "null";

  constructor(
    readonly dataPlane: Pick<TunDataPlane, "forwardDns">,
    readonly upstream: Pick<UpstreamResolver, "servers" | "limits">,
    readonly claims: () => NameClaims,
  ) {}

  /** Queries for `server` leave by `device` (tun_route bound its upstream). */
  bind(server: string, device: string): void {
    this.#bound.set(server, device);
    this.update();
  }

  /** Queries for `server` follow the routes again: the loop cannot forward them. */
  unbind(server: string): void {
    this.#bound.delete(server);
    this.update();
  }

  /** Sends the loop the current configuration if it changed (also after namespace changes). */
  update(): void {
    const config = this.#config();
    const text = JSON.stringify(config);
    if (text === this.#sent) return;
    this.#sent = text;
    this.dataPlane.forwardDns(config);
  }

  /** Stops the loop's forwarding (the main thread answers everything again). */
  stop(): void {
    this.#bound.clear();
    this.update();
  }

  #config(): DnsForwarding | null {
    const servers: DnsForwarding["servers"] = [];
    for (const server of this.upstream.servers) {
      const device = this.#bound.get(server);
      const [host, port] = splitServer(server);
      const address = ipv4ToNumber(host);
      if (device === undefined || address === undefined) return null;
      servers.push({ address, port, device });
    }
    if (servers.length === 0) return null;
    const { timeoutMs, attempts, maxInFlight } = this.upstream.limits;
    return { servers, timeoutMs, attempts, maxInFlight, claims: this.claims() };
  }
}
