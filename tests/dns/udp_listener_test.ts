/** The DNS server's UDP socket: libc's non-blocking socket on Linux, Deno's elsewhere. */
import { assert, assertEquals } from "../assert.ts";
import { listenDenoUdp, type ListenUdp } from "../../core/dns/udp_listener.ts";
import { listenPolledUdp } from "../../ffi/linux/udp_server.ts";

/** An echo with the first byte flipped, or no answer for a datagram starting with 0xff. */
const answer = (query: Uint8Array) =>
  Promise.resolve(query[0] === 0xff ? null : Uint8Array.of(query[0] ^ 0x80, ...query.subarray(1)));

const listeners: [string, ListenUdp][] = [["libc", listenPolledUdp], ["Deno", listenDenoUdp]];

for (const [kind, listenUdp] of listeners) {
  Deno.test(`dns udp listener (${kind} socket): 500 datagrams in bursts are answered to each sender, and a null answer sends nothing`, async () => {
    const listener = listenUdp("127.0.0.1", 0, answer);
    const client = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    try {
      const to = { transport: "udp" as const, hostname: "127.0.0.1", port: listener.port };
      await client.send(Uint8Array.of(0xff, 1), to); // unanswered
      const seen = new Set<number>();
      // Bursts of 100: more unread answers than that overflow the client's receive buffer.
      for (let burst = 0; burst < 5; burst++) {
        for (let i = burst * 100; i < (burst + 1) * 100; i++) {
          await client.send(Uint8Array.of(i & 0x7f, i >> 8, i & 0xff), to);
        }
        while (seen.size < (burst + 1) * 100) {
          const [reply, from] = await client.receive();
          assertEquals((from as Deno.NetAddr).port, listener.port);
          assert(reply[0] >= 0x80, "every answer is the handler's, never the unanswered datagram");
          seen.add((reply[1] << 8) | reply[2]);
        }
      }
      assertEquals(seen.size, 500);
    } finally {
      client.close();
      listener.close();
    }
  });
}

Deno.test("dns udp listener (libc socket): a taken port is AddrInUse, and a closed listener frees its port", async () => {
  const first = listenPolledUdp("127.0.0.1", 0, answer);
  let error: unknown;
  try {
    listenPolledUdp("127.0.0.1", first.port, answer).close();
  } catch (e) {
    error = e;
  }
  assert(error instanceof Deno.errors.AddrInUse, `got ${error}`);
  first.close();
  // Free once the poll waiting on it in another thread has returned (woken by the close).
  let again;
  for (let tries = 0; !again; tries++) {
    try {
      again = listenPolledUdp("127.0.0.1", first.port, answer);
    } catch (error) {
      if (tries === 20) throw error;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }
  assertEquals(again.port, first.port);
  again.close();
  await new Promise((resolve) => setTimeout(resolve, 20)); // its poll returns too
});

Deno.test("dns udp listener (libc socket): an idle listener lets the main thread sleep (its poll waits seconds, not 100 ms)", async () => {
  /** Times this (the JavaScript) thread gave up the CPU of its own accord: once per wake-up. */
  const sleeps = () =>
    Number(
      /voluntary_ctxt_switches:\s+(\d+)/.exec(
        Deno.readTextFileSync("/proc/thread-self/status"),
      )![1],
    );
  const listener = listenPolledUdp("127.0.0.1", 0, answer);
  try {
    await new Promise((resolve) => setTimeout(resolve, 200));
    const before = sleeps();
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const woken = sleeps() - before;
    // A poll that returned every 100 ms woke it 20 times and more in these 2 s.
    assert(woken <= 10, `the idle thread woke ${woken} times in 2 s`);
  } finally {
    listener.close();
    await new Promise((resolve) => setTimeout(resolve, 20)); // its poll returns too
  }
});
