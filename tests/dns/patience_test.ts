/**
 * Forwarding is as patient as the system's resolver (resolv.conf(5) `timeout:` and `attempts:`):
 * a try every `timeout` over the servers, `attempts` rounds, and an earlier try's late answer
 * still counts.
 */
import { assertEquals, assertMatch } from "../assert.ts";
import {
  parseResolvOptions,
  UpstreamResolver,
  type UpstreamTransport,
} from "../../core/dns/upstream.ts";

/** A transport whose server answers `answerAfterMs` after each try (never when undefined). */
function slowServer(answerAfterMs: number | undefined, tries: string[], name: string) {
  return (): UpstreamTransport => ({
    udp(query, timeoutMs, signal) {
      tries.push(name);
      return new Promise((resolve, reject) => {
        const answer = answerAfterMs !== undefined && answerAfterMs < timeoutMs
          ? setTimeout(
            () => resolve(new Uint8Array([query[0], query[1], 0x81, 0x80])),
            answerAfterMs,
          )
          : undefined;
        const give = setTimeout(() => reject(new Error("timed out")), timeoutMs);
        signal.addEventListener("abort", () => {
          clearTimeout(answer);
          clearTimeout(give);
          reject(signal.reason);
        }, { once: true });
      });
    },
    tcp: () => Promise.reject(new Error("no TCP")),
    close: () => Promise.resolve(),
  });
}

const QUERY = new Uint8Array([0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);

Deno.test("dns patience: resolv.conf options as glibc reads them, with its defaults and caps", () => {
  assertEquals(parseResolvOptions("nameserver 10.0.0.1\n"), { timeoutMs: 5000, attempts: 2 });
  assertEquals(
    parseResolvOptions("options ndots:1 timeout:1 attempts:3\n"),
    { timeoutMs: 1000, attempts: 3 },
  );
  assertEquals(parseResolvOptions("options timeout:99 attempts:9\n"), {
    timeoutMs: 30_000,
    attempts: 5,
  });
  assertEquals(parseResolvOptions("options timeout:0 attempts:x\n").timeoutMs, 1000);
});

Deno.test("dns patience: an answer slower than one try's timeout still arrives (the first try keeps waiting)", async () => {
  const tries: string[] = [];
  const upstream = new UpstreamResolver(["a"], slowServer(150, tries, "a"), {
    timeoutMs: 100,
    attempts: 2,
  });
  const reply = await upstream.forward(QUERY);
  assertEquals([...reply.subarray(0, 2)], [0x12, 0x34]);
  assertEquals(tries, ["a", "a"], "a second try went out at 100 ms");
  await upstream.close();
});

Deno.test("dns patience: servers are tried in turn, round after round, then the query fails", async () => {
  const tries: string[] = [];
  const factories: Record<string, () => UpstreamTransport> = {
    a: slowServer(undefined, tries, "a"),
    b: slowServer(undefined, tries, "b"),
  };
  const upstream = new UpstreamResolver(["a", "b"], (server) => factories[server](), {
    timeoutMs: 50,
    attempts: 2,
  });
  const started = Date.now();
  const error = await upstream.forward(QUERY).catch((e) => e);
  assertMatch(String(error), /a: timed out; b: timed out/);
  assertEquals(tries, ["a", "b", "a", "b"]);
  const took = Date.now() - started;
  assertEquals(took >= 190, true, `gave up after ${took} ms, before 4 × 50 ms`);
  await upstream.close();
});

Deno.test("dns patience: the second server answers when the first never does", async () => {
  const tries: string[] = [];
  const factories: Record<string, () => UpstreamTransport> = {
    a: slowServer(undefined, tries, "a"),
    b: slowServer(10, tries, "b"),
  };
  const upstream = new UpstreamResolver(["a", "b"], (server) => factories[server](), {
    timeoutMs: 50,
    attempts: 2,
  });
  await upstream.forward(QUERY);
  assertEquals(tries, ["a", "b"]);
  await upstream.close();
});
