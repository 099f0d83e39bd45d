/**
 * A stand-in for a network's real resolver, run in a lab peer namespace: UDP and TCP on port 53
 * of every address. `www.public-example.com` A 203.0.113.7; `slow.public-example.com` answers after
 * 2 s, `slower.public-example.com` after 4 s (203.0.113.10); `big.public-example.com` has 40 TXT records (too big for UDP: TC, then TCP); names under
 * `blackhole.public-example.com` are never answered; `spoof.public-example.com` (over UDP) is
 * answered 203.0.113.9 after 200 ms, preceded by forged replies that only a careless forwarder
 * takes — another source port, another id, another question, and, when started with
 * `--spoof-from <address>` (an address of this namespace), another source address (port 53 is
 * taken by the wildcard socket: any port); all of them
 * say 203.0.113.66. Everything else NXDOMAIN. `--log-names FILE` appends each UDP question to
 * FILE; `--bind ADDRESS` serves that address only. Prints READY when listening.
 */
import dnsPacket from "dns-packet";
import { Buffer } from "node:buffer";

function answer(query: Uint8Array, udp: boolean): Promise<Uint8Array | null> {
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
  if (name.endsWith(".blackhole.public-example.com")) return Promise.resolve(null);
  if (name === "slow.public-example.com") {
    return new Promise((r) =>
      setTimeout(() => r(reply([{ type: "A", name, ttl: 300, data: "203.0.113.8" }])), 2000)
    );
  }
  if (name === "slower.public-example.com") {
    return new Promise((r) =>
      setTimeout(() => r(reply([{ type: "A", name, ttl: 300, data: "203.0.113.10" }])), 4000)
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

/** With `--bind ADDRESS`, only that address is served (a second resolver on the same peer). */
const bindAt = Deno.args.indexOf("--bind");
const hostname = bindAt >= 0 ? Deno.args[bindAt + 1] : "0.0.0.0";
const udp = Deno.listenDatagram({ transport: "udp", hostname, port: 53 });
const tcp = Deno.listen({ hostname, port: 53 });
const otherPort = Deno.listenDatagram({ transport: "udp", hostname, port: 5353 });
const spoofFrom = Deno.args.indexOf("--spoof-from");
/** With `--log-names FILE`, each UDP question asked is appended to FILE as "name TYPE". */
const logNames = Deno.args.indexOf("--log-names");
const namesFile = logNames >= 0 ? Deno.args[logNames + 1] : undefined;
const otherAddress = spoofFrom >= 0
  ? Deno.listenDatagram({ transport: "udp", hostname: Deno.args[spoofFrom + 1], port: 0 })
  : undefined;

/** The forgeries, then the real answer. */
async function spoof(query: Uint8Array, from: Deno.Addr): Promise<void> {
  const packet = dnsPacket.decode(Buffer.from(query));
  const name = packet.questions![0].name;
  const forged = (id: number, question: dnsPacket.Question) =>
    new Uint8Array(dnsPacket.encode({
      type: "response",
      id,
      flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE,
      questions: [question],
      answers: [{ type: "A", name: question.name, ttl: 300, data: "203.0.113.66" }],
    }));
  const id = packet.id!;
  const question = packet.questions![0];
  await otherAddress?.send(forged(id, question), from);
  await otherPort.send(forged(id, question), from);
  await udp.send(forged(id ^ 0x0101, question), from);
  await udp.send(forged(id, { ...question, name: `evil.${name}` }), from);
  await udp.send(forged(id, { ...question, type: "AAAA" }), from);
  await new Promise((resolve) => setTimeout(resolve, 200));
  await udp.send(
    new Uint8Array(dnsPacket.encode({
      type: "response",
      id,
      flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE,
      questions: [question],
      answers: [{ type: "A", name, ttl: 300, data: "203.0.113.9" }],
    })),
    from,
  );
}

(async () => {
  for await (const [query, from] of udp) {
    let name;
    try {
      const question = dnsPacket.decode(Buffer.from(query)).questions?.[0];
      name = question?.name.toLowerCase();
      if (namesFile) {
        Deno.writeTextFileSync(namesFile, `${name} ${question?.type}\n`, { append: true });
      }
    } catch {
      continue; // not DNS
    }
    if (name === "spoof.public-example.com") {
      spoof(query, from).catch(() => {});
      continue;
    }
    answer(query, true).then((r) => r && udp.send(r, from)).catch(() => {});
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
      if (!reply) return conn.close();
      const framed = new Uint8Array(reply.length + 2);
      new DataView(framed.buffer).setUint16(0, reply.length);
      framed.set(reply, 2);
      await conn.write(framed);
      conn.close();
    })().catch(() => {});
  }
})();
console.log("READY");
