/** DNS over UDP inside the TUN: answered from the address the query went to, other ports not served. */
import { parseIpv4Address } from "../../core/net/wire/ipv4.ts";
import { assertEquals } from "../assert.ts";
import { dnsOverTcpResolver, dnsOverTun } from "../../core/dns/tun_reply.ts";
import type { UdpDatagram } from "../../core/net/stack_types.ts";
import { NO_ANSWER } from "../../core/net/packet_loop/dns_forwarder.ts";

const APP = parseIpv4Address("10.1.2.3");
const DNS = parseIpv4Address("198.18.0.2");

const counted: [number | undefined, number][] = [];
const fakeDns = {
  handle: (query: Uint8Array, udp: boolean) =>
    Promise.resolve(query.length < 12 ? null : new Uint8Array([udp ? 1 : 0, ...query.slice(0, 2)])),
  countForwarded: (rcode: number | undefined, seconds: number) => {
    counted.push([rcode, seconds]);
  },
};

function datagram(dstPort: number, payload: Uint8Array): UdpDatagram {
  return { srcAddress: APP, srcPort: 40000, dstAddress: DNS, dstPort, payload };
}

async function replies(d: UdpDatagram): Promise<UdpDatagram[]> {
  const sent: UdpDatagram[] = [];
  dnsOverTun(fakeDns).handle(d, (r) => sent.push(r));
  await new Promise((resolve) => setTimeout(resolve, 0));
  return sent;
}

Deno.test("dns tun: a query to port 53 is answered over UDP from the address it was sent to", async () => {
  const sent = await replies(datagram(53, new Uint8Array(12).fill(7)));
  assertEquals(sent, [{
    srcAddress: DNS,
    srcPort: 53,
    dstAddress: APP,
    dstPort: 40000,
    payload: new Uint8Array([1, 7, 7]),
  }]);
});

Deno.test("dns tun: the service is port 53 alone (the packet loop refuses the others)", () => {
  assertEquals(dnsOverTun(fakeDns).ports, [53]);
});

Deno.test("dns tun: datagrams to other ports and queries too short for an id get no reply", async () => {
  assertEquals(await replies(datagram(5353, new Uint8Array(12))), []);
  assertEquals(await replies(datagram(53, new Uint8Array(5))), []);
});

Deno.test("dns tun: a failing DNS server sends nothing and does not throw", async () => {
  const sent: UdpDatagram[] = [];
  dnsOverTun({ ...fakeDns, handle: () => Promise.reject(new Error("boom")) }).handle(
    datagram(53, new Uint8Array(12)),
    (r) => sent.push(r),
  );
  await new Promise((resolve) => setTimeout(resolve, 0));
  assertEquals(sent, []);
});

Deno.test("dns tun: queries the packet loop forwarded are counted: rcode and seconds, none for no answer", () => {
  counted.length = 0;
  const service = dnsOverTun(fakeDns);
  service.answeredInLoop!(3, 1500);
  service.answeredInLoop!(NO_ANSWER, 10_000_000);
  assertEquals(counted, [[3, 0.0015], [undefined, 10]]);
});

Deno.test("dns tun: TCP to an address k8stun answers DNS on goes to its DNS listener, as the set grows", async () => {
  const addresses = new Set(["198.18.0.2"]);
  const resolver = dnsOverTcpResolver(addresses, { host: "127.0.0.153", port: 53 });
  const listener = { kind: "host", host: "127.0.0.153", port: 53 };
  assertEquals(await resolver.resolveAddress!("198.18.0.2"), listener);
  assertEquals(await resolver.resolveAddress!("10.77.0.2"), null);
  addresses.add("10.77.0.2"); // tun_route routed the system's resolver into the TUN
  assertEquals(await resolver.resolveAddress!("10.77.0.2"), listener);
});
