/**
 * A stand-in for a network's real resolver, run in a lab peer namespace: UDP and TCP on port 53
 * of every address. `www.public-example.com` A 203.0.113.7; `slow.public-example.com` answers after
 * 2 s; `big.public-example.com` has 40 TXT records (too big for UDP: TC, then TCP); everything
 * else NXDOMAIN. Prints READY when listening.
 */
import dnsPacket from "dns-packet";
import { Buffer } from "node:buffer";

function answer(query: Uint8Array, udp: boolean): Promise<Uint8Array> {
  const packet = dnsPacket.decode(Buffer.from(query));
  const question = packet.questions![0];
  const name = question.name.toLowerCase();
  const reply = (answers: dnsPacket.Answer[], rcode = 0, tc = false) =>
    new Uint8Array(dnsPacket.encode({
      type: "response",
      id: packet.id,
      flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | rcode |
        (tc ? dnsPacket.TRUNCATED_RESPONSE : 0),
      questions: packet.questions,
      answers,
    }));
  if (name === "www.public-example.com" && question.type === "A") {
    return Promise.resolve(reply([{ type: "A", name, ttl: 300, data: "203.0.113.7" }]));
  }
  if (name === "slow.public-example.com") {
    return new Promise((r) =>
      setTimeout(() => r(reply([{ type: "A", name, ttl: 300, data: "203.0.113.8" }])), 2000)
    );
  }
  if (name === "big.public-example.com") {
    const records = Array.from({ length: 40 }, (_, i) => ({
      type: "TXT" as const,
      name,
      ttl: 300,
      data: `record ${i} ${"x".repeat(40)}`,
    }));
    return Promise.resolve(udp ? reply([], 0, true) : reply(records));
  }
  return Promise.resolve(reply([], 3)); // NXDOMAIN
}

const udp = Deno.listenDatagram({ transport: "udp", hostname: "0.0.0.0", port: 53 });
const tcp = Deno.listen({ hostname: "0.0.0.0", port: 53 });
(async () => {
  for await (const [query, from] of udp) {
    answer(query, true).then((r) => udp.send(r, from)).catch(() => {});
  }
})();
(async () => {
  for await (const conn of tcp) {
    (async () => {
      const head = new Uint8Array(2);
      await conn.read(head);
      const query = new Uint8Array((head[0] << 8) | head[1]);
      for (let off = 0; off < query.length;) off += (await conn.read(query.subarray(off)))!;
      const reply = await answer(query, false);
      const framed = new Uint8Array(reply.length + 2);
      new DataView(framed.buffer).setUint16(0, reply.length);
      framed.set(reply, 2);
      await conn.write(framed);
      conn.close();
    })().catch(() => {});
  }
})();
console.log("READY");
