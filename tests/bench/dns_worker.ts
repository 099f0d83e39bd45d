/**
 * The DNS benchmark's other parties, each in its own Worker so the server under test has the
 * main thread to itself, as it would with clients and an upstream in other processes:
 * `{ role: "upstream" }` answers every query at once and posts its port; `{ role: "load", … }`
 * keeps `inFlight` queries outstanding until `total` were answered and posts qps and latencies.
 */
/// <reference lib="deno.worker" />
import dnsPacket from "dns-packet";

type Job =
  | { role: "upstream" }
  | { role: "load"; port: number; name: string; total: number; inFlight: number };

self.onmessage = async (event: MessageEvent<Job>) => {
  const job = event.data;
  if (job.role === "upstream") {
    const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    self.postMessage({ port: (socket.addr as Deno.NetAddr).port });
    for await (const [query, from] of socket) {
      const reply = query.slice();
      reply[2] |= 0x80;
      socket.send(reply, from).catch(() => {});
    }
    return;
  }
  self.postMessage(await load(job.port, job.name, job.total, job.inFlight));
  self.close();
};

async function load(port: number, name: string, total: number, inFlight: number) {
  const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const template = new Uint8Array(
    dnsPacket.encode({
      type: "query",
      id: 0,
      flags: dnsPacket.RECURSION_DESIRED,
      questions: [{ type: "A", name }],
    }),
  );
  const sentAt = new Float64Array(65536);
  const samples: number[] = [];
  let next = 0;
  const send = () => {
    const id = next++ & 0xffff;
    const query = template.slice();
    query[0] = id >> 8;
    query[1] = id & 0xff;
    sentAt[id] = performance.now();
    return socket.send(query, { transport: "udp", hostname: "127.0.0.1", port });
  };
  const start = performance.now();
  for (let i = 0; i < inFlight; i++) await send();
  while (samples.length < total) {
    const [reply] = await socket.receive();
    const id = (reply[0] << 8) | reply[1];
    samples.push(performance.now() - sentAt[id]);
    if (next < total) await send();
  }
  const seconds = (performance.now() - start) / 1000;
  socket.close();
  samples.sort((a, b) => a - b);
  return {
    qps: total / seconds,
    p50: samples[Math.floor(total / 2)],
    p99: samples[Math.floor(total * 0.99)],
  };
}
