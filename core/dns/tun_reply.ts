/**
 * DNS over UDP that arrives inside the TUN (tun_route mode routes the system's resolvers there,
 * docs/architecture.md): each query on port 53 is answered by the DNS server and the answer goes
 * back from the address and port the query was sent to, as the client expects (RFC 1035 §4.2.1).
 * Datagrams to other ports are not DNS: the packet loop refuses them with ICMP port unreachable.
 * DNS over TCP to those addresses (a client retrying a truncated answer, RFC 7766 §5) is a flow
 * like any other: the router sends it to k8stun's own DNS listener through
 * {@link dnsOverTcpResolver}.
 */
import type { Resolver } from "../../mod.ts";
import type { UdpService } from "../net/stack_types.ts";
import { NO_ANSWER } from "../net/packet_loop/dns_forwarder.ts";
import { logger } from "../log.ts";
import type { DnsServer } from "./server.ts";
import { DNS_PORT } from "./unanswered.ts";

const log = logger("dns");

/**
 * The TUN data plane's UDP service: DNS on port 53, answered by `dns` — but for the names the
 * packet loop forwards itself, which `dns` only counts.
 */
export function dnsOverTun(dns: Pick<DnsServer, "handle" | "countForwarded">): UdpService {
  return {
    ports: [DNS_PORT],
    handle: (datagram, reply) => {
      if (datagram.dstPort !== DNS_PORT) return;
      dns.handle(datagram.payload, true).then((answer) => {
        if (!answer) return; // too short to carry an id: dropped, as on a socket
        reply({
          srcAddress: datagram.dstAddress,
          srcPort: DNS_PORT,
          dstAddress: datagram.srcAddress,
          dstPort: datagram.srcPort,
          payload: answer,
        });
      }).catch((error) =>
        log.debug("DNS query from the TUN failed: {error}", { error: String(error) })
      );
    },
    answeredInLoop: (rcode, micros) =>
      dns.countForwarded(rcode === NO_ANSWER ? undefined : rcode, micros / 1e6),
  };
}

/**
 * The router's first resolver in TUN mode: a TCP flow to one of `addresses` (k8stun's DNS address
 * in the TUN, and the resolvers tun_route routes there; the set may grow) is dialed to `listener`,
 * k8stun's DNS server on loopback, whatever port it named: k8stun serves only DNS there.
 */
export function dnsOverTcpResolver(
  addresses: ReadonlySet<string>,
  listener: { host: string; port: number },
): Resolver {
  return {
    name: "dns-over-tcp",
    resolveAddress: (address) =>
      addresses.has(address) ? { kind: "host", host: listener.host, port: listener.port } : null,
  };
}
