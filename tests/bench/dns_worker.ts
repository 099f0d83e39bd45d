/**
 * The DNS benchmark's other parties, each in its own Worker so the server under test has the
 * main thread to itself, as it would with clients and an upstream in other processes:
 * `{ role: "upstream", delayMs? }` answers every query (at once, or `delayMs` later: a resolver
 * that far away) and posts its port; `{ role: "load", … }` runs dns_load.ts against 127.0.0.1 and
 * posts its result.
 */
/// <reference lib="deno.worker" />
import { dnsLoad } from "./dns_load.ts";

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
  self.postMessage(await dnsLoad("127.0.0.1", job.port, job.name, job.total, job.inFlight));
  self.close();
};
