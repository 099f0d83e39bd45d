/**
 * The packet loop's DNS forwarding follows tun_route's bindings (cli/loop_dns_forwarding.ts): on
 * only while every resolver is bound, in the upstream's order, with its limits; claims sent again
 * only when they change.
 */
import { assertEquals } from "../assert.ts";
import { LoopDnsForwarding } from "../../cli/loop_dns_forwarding.ts";
import type { DnsForwarding } from "../../core/net/packet_loop/dns_forwarder.ts";
import type { NameClaims } from "../../core/dns/claimed_names.ts";

function setUp(servers: string[]) {
  const sent: (DnsForwarding | null)[] = [];
  let claims: NameClaims = {
    suffixes: ["cluster.local", "svc", "pod"],
    bareNames: false,
    everything: false,
  };
  const forwarding = new LoopDnsForwarding(
    { forwardDns: (config) => (sent.push(config), true) },
    { servers, limits: { timeoutMs: 2000, attempts: 3, maxInFlight: 100 } },
    () => claims,
  );
  return { sent, forwarding, setClaims: (next: NameClaims) => claims = next };
}

Deno.test("loop dns forwarding: on once every resolver is bound, in order, with the resolvers' limits", () => {
  const { sent, forwarding } = setUp(["10.0.0.1", "10.0.0.2:5353"]);
  forwarding.bind("10.0.0.2:5353", "eth1");
  assertEquals(sent.length, 0, "one resolver is not bound yet: the main thread answers");
  forwarding.bind("10.0.0.1", "wlan0");
  assertEquals(sent, [{
    servers: [
      { address: 0x0a000001, port: 53, device: "wlan0" },
      { address: 0x0a000002, port: 5353, device: "eth1" },
    ],
    timeoutMs: 2000,
    attempts: 3,
    maxInFlight: 100,
    claims: { suffixes: ["cluster.local", "svc", "pod"], bareNames: false, everything: false },
  }]);
  forwarding.bind("10.0.0.1", "eth0"); // the route moved (a dock)
  assertEquals(sent.at(-1)?.servers[0].device, "eth0");
  forwarding.unbind("10.0.0.1");
  assertEquals(sent.at(-1), null, "an unbound resolver: off");
});

Deno.test("loop dns forwarding: new namespaces are sent once; nothing is sent when nothing changed", () => {
  const { sent, forwarding, setClaims } = setUp(["10.0.0.1"]);
  forwarding.bind("10.0.0.1", "wlan0");
  forwarding.update();
  forwarding.update();
  assertEquals(sent.length, 1);
  setClaims({
    suffixes: ["cluster.local", "svc", "pod", "payments"],
    bareNames: false,
    everything: false,
  });
  forwarding.update();
  forwarding.update();
  assertEquals(sent.length, 2);
  assertEquals(sent[1]?.claims.suffixes.at(-1), "payments");
  forwarding.stop();
  assertEquals(sent.at(-1), null);
});

Deno.test("loop dns forwarding: an IPv6 resolver, or none at all, keeps it off", () => {
  const v6 = setUp(["[fd00::1]:53"]);
  v6.forwarding.bind("[fd00::1]:53", "wlan0");
  assertEquals(v6.sent, []);
  const none = setUp([]);
  none.forwarding.update();
  assertEquals(none.sent, []);
});
