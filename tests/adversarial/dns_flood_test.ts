/**
 * A flood of queries the upstream never answers, in `tun_route` mode (the lab's resolver is a real
 * server behind a veth link, routed into the TUN): k8stun's descriptors and memory stay bounded,
 * and meanwhile cluster names and the names the upstream does answer keep resolving.
 */
import { assert, assertEquals } from "../assert.ts";
import { labUnavailable } from "../lab/lab.ts";
import { CurlLoop, labWithResolver, RESOLVER, ResourceWatch, startDemo } from "./harness.ts";

const ignore = labUnavailable() !== undefined;
const FLOOD = 20_000;
/** What the user looks up meanwhile, and the answer each must get. */
const LOOKUPS = [
  ["hello.demo", /^198\.1[89]\./],
  ["www.public-example.com", /^203\.0\.113\.7$/],
] as const;

/**
 * Sends `count` queries for distinct names under blackhole.public-example.com to `server`, at
 * most 200 every 5 ms, counts the replies for 4 s more, and prints `SENT <n> REPLIES <n>`.
 */
const FLOOD_CLIENT = `
const [server, count] = [Deno.args[0], Number(Deno.args[1])];
const socket = Deno.listenDatagram({ transport: "udp", hostname: "0.0.0.0", port: 0 });
let replies = 0;
(async () => { for await (const _ of socket) replies++; })().catch(() => {});
const encoder = new TextEncoder();
for (let i = 0; i < count; i++) {
  const labels = ["n" + i, "blackhole", "public-example", "com"].map((l) => encoder.encode(l));
  const name = labels.flatMap((l) => [l.length, ...l]);
  const query = new Uint8Array([i >> 8 & 0xff, i & 0xff, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0,
    ...name, 0, 0, 1, 0, 1]);
  await socket.send(query, { transport: "udp", hostname: server, port: 53 });
  if (i % 200 === 199) await new Promise((r) => setTimeout(r, 5));
}
console.log("FLOODED");
await new Promise((r) => setTimeout(r, 4000));
console.log("SENT " + count + " REPLIES " + replies);
socket.close();
`;

Deno.test({
  name:
    "adversarial dns: 20,000 never-answered forwarded queries keep k8stun's fds and memory bounded while names still resolve",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using lab = await labWithResolver("ndots:1 timeout:1 attempts:2");
    const k8stun = await startDemo(lab);
    const watch = ResourceWatch.start(k8stun.pid);
    const browsing = CurlLoop.start(lab);

    const flood = lab.spawn(Deno.execPath(), [
      "eval",
      "--unstable-net",
      FLOOD_CLIENT,
      RESOLVER,
      String(FLOOD),
    ]);
    // A user resolving names while the flood runs and for a while after: every lookup answers
    // (dig's one try of 3 s each).
    const lookups: string[] = [];
    let flooding = true;
    const user = (async () => {
      while (flooding) {
        for (const [name, expected] of LOOKUPS) {
          const started = performance.now();
          const dig = await lab.run("dig", ["+tries=1", "+time=3", name]);
          const answer = /^\S+\s+\d+\s+IN\s+A\s+(\S+)$/m.exec(dig.stdout)?.[1] ?? "";
          const status = /status: (\w+)/.exec(dig.stdout)?.[1] ?? "no answer";
          const ms = Math.round(performance.now() - started);
          lookups.push(expected.test(answer) ? "ok" : `${name}: ${status} after ${ms} ms`);
        }
      }
    })();
    const [, sent, replies] = await flood.waitForOutput(/SENT (\d+) REPLIES (\d+)/, 60_000);
    flooding = false;
    await user;
    const curls = await browsing.stop();
    console.log(
      `[users] ${curls.ok} curls of http://hello.demo/ succeeded, ${curls.failed} failed`,
    );
    assertEquals(curls.failures, [], "curl http://hello.demo/ kept working during the flood");
    const bounds = watch.check("20,000 unanswered DNS queries", { maxRssMiB: 450, maxFds: 200 });
    console.log(
      `[dns flood] sent ${sent}, ${replies} SERVFAIL replies reached the flooder, user lookups: ` +
        `${lookups.filter((l) => l === "ok").length}/${lookups.length} ok`,
    );
    assertEquals(Number(sent), FLOOD);
    assert(lookups.length >= 4, `only ${lookups.length} lookups ran`);
    // Cluster names never wait on the upstream: every one is answered. A forwarded name shares
    // the upstream and the in-flight cap with the flood (past the cap the oldest query gives
    // way), so on a loaded machine one may lose; nearly all must be answered.
    const failedCluster = lookups.filter((l) => l.startsWith("hello.demo"));
    assertEquals(failedCluster, [], "every cluster lookup during the flood answered");
    const failedForwarded = lookups.filter((l) => l.startsWith("www."));
    assert(
      failedForwarded.length <= Math.max(1, lookups.length / 20),
      `forwarded lookups that failed during the flood: ${failedForwarded.join("; ")}`,
    );
    assert(bounds.fds > 0);
    // Afterwards: forwarding still works, and nothing is left in flight or open.
    const after = await lab.run("dig", ["+short", "+tries=1", "+time=3", "www.public-example.com"]);
    assertEquals(after.stdout.trim(), "203.0.113.7");
  },
});
