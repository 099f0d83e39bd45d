/**
 * The DNS benchmark's other parties, each in its own Worker so the server under test has the
 * main thread to itself, as it would with clients and an upstream in other processes:
 * `{ role: "upstream", delayMs? }` answers every query (at once, or `delayMs` later: a resolver
 * that far away) and posts its port; `{ role: "load", … }`
 * keeps `inFlight` queries outstanding until `total` were answered and posts qps and latencies.
 */
/// <reference lib="deno.worker" />
import dnsPacket from "dns-packet";

/** A query unanswered for this long is counted as lost. */
const LOSS_MS = 1000;

type Job =
  | { role: "upstream"; delayMs?: number }
  | { role: "load"; port: number; name: string; total: number; inFlight: number };

self.onmessage = async (event: MessageEvent<Job>) => {
  const job = event.data;
  if (job.role === "upstream") {
    const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    self.postMessage({ port: (socket.addr as Deno.NetAddr).port });
    const delayMs = job.delayMs ?? 0;
    for await (const [query, from] of socket) {
      const reply = query.slice();
      reply[2] |= 0x80;
      const answer = () => socket.send(reply, from).catch(() => {});
      if (delayMs > 0) setTimeout(answer, delayMs);
      else answer();
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
  const outstanding = new Set<number>();
  const samples: number[] = [];
  let next = 0;
  let lost = 0;
  const send = () => {
    const id = next++ & 0xffff;
    const query = template.slice();
    query[0] = id >> 8;
    query[1] = id & 0xff;
    sentAt[id] = performance.now();
    outstanding.add(id);
    return socket.send(query, { transport: "udp", hostname: "127.0.0.1", port });
  };
  // UDP may drop a query or its answer on a loaded machine: one unanswered for LOSS_MS counts as
  // lost and is replaced, so the run ends instead of waiting for it for ever.
  let wake = Promise.withResolvers<null>();
  const sweep = setInterval(() => {
    const now = performance.now();
    for (const id of outstanding) {
      if (now - sentAt[id] < LOSS_MS) continue;
      outstanding.delete(id);
      lost++;
      if (next < total) send().catch(() => {});
    }
    wake.resolve(null);
    wake = Promise.withResolvers();
  }, LOSS_MS / 4);
  const start = performance.now();
  for (let i = 0; i < inFlight; i++) await send();
  let receiving = socket.receive();
  while (samples.length + lost < total) {
    const received = await Promise.race([receiving, wake.promise]);
    if (received === null) continue;
    receiving = socket.receive();
    const [reply] = received;
    const id = (reply[0] << 8) | reply[1];
    if (!outstanding.delete(id)) continue; // the answer to a query counted as lost
    samples.push(performance.now() - sentAt[id]);
    if (next < total) await send();
  }
  clearInterval(sweep);
  const seconds = (performance.now() - start) / 1000;
  receiving.catch(() => {}); // the socket closes under it
  socket.close();
  samples.sort((a, b) => a - b);
  return {
    qps: samples.length / seconds,
    p50: samples[Math.floor(samples.length / 2)],
    p99: samples[Math.floor(samples.length * 0.99)],
    lost,
  };
}
