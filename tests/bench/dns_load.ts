/**
 * The DNS benchmark's load: keeps `inFlight` queries for one name outstanding at `host:port` until
 * `total` were answered, and reports queries per second and latency. Used in a Worker by
 * dns_worker.ts, and run on its own inside a lab (dns_tun_route.ts):
 * `dns_load.ts HOST PORT NAME TOTAL IN_FLIGHT` prints the result as one JSON line.
 */
import dnsPacket from "dns-packet";

/** A query unanswered for this long is counted as lost. */
const LOSS_MS = 1000;

/** What one load run measured. */
export interface DnsLoadResult {
  qps: number;
  p50: number;
  p99: number;
  /** Queries unanswered for a second (UDP loss), replaced by new ones. */
  lost: number;
}

export async function dnsLoad(
  host: string,
  port: number,
  name: string,
  total: number,
  inFlight: number,
): Promise<DnsLoadResult> {
  const local = host.startsWith("127.") ? "127.0.0.1" : "0.0.0.0";
  const socket = Deno.listenDatagram({ transport: "udp", hostname: local, port: 0 });
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
    return socket.send(query, { transport: "udp", hostname: host, port });
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

if (import.meta.main) {
  const [host, port, name, total, inFlight] = Deno.args;
  console.log(JSON.stringify(
    await dnsLoad(host, Number(port), name, Number(total), Number(inFlight)),
  ));
}
