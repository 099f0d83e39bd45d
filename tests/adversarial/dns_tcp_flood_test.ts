/**
 * Hostile clients against k8stun's DNS over TCP (the demo in a lab; the server listens on
 * 127.0.0.153:53): 2,000 idle connections from one address, a query trickling in at 1 byte/s, a
 * connection left idle after its answer (RFC 7766 §6.2.3), and descriptor exhaustion. Clients are
 * bash `/dev/tcp` sockets and dig inside the lab. Each test prints k8stun's RSS and descriptors.
 */
import { assert, assertEquals, assertMatch } from "../assert.ts";
import { Lab, labUnavailable } from "../lab/lab.ts";
import { CurlLoop, DEMO_RESOLV, ResourceWatch, sampleResources, startDemo } from "./harness.ts";

const ignore = labUnavailable() !== undefined;
const DNS = "127.0.0.153";

/** bash that opens `count` connections to the DNS port, keeps them open and says so. */
function idleFlood(count: number): string {
  return `for i in $(seq ${count}); do exec {fd}<>/dev/tcp/${DNS}/53 || true; done 2>/dev/null
echo OPENED; sleep 60`;
}

/** `dig +tcp` for hello.demo from `source`: the VIP, or empty. */
async function digTcp(lab: Lab, source = "127.0.0.1"): Promise<string> {
  const dig = await lab.run("dig", [
    "+tcp",
    "+short",
    "+tries=1",
    "+time=3",
    "-b",
    source,
    `@${DNS}`,
    "hello.demo",
  ]);
  return dig.stdout.trim();
}

Deno.test({
  name:
    "adversarial dns: 2,000 idle TCP connections from one address are capped and a query from another address is answered",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using lab = await Lab.create({ resolvConf: DEMO_RESOLV });
    const k8stun = await startDemo(lab);
    const baseline = sampleResources(k8stun.pid).fds;
    const watch = ResourceWatch.start(k8stun.pid);
    const browsing = CurlLoop.start(lab);
    const flood = lab.spawn("bash", ["-c", idleFlood(2_000)]);
    await flood.waitForOutput(/OPENED/, 15_000);
    assertMatch(await digTcp(lab, "127.0.0.2"), /^198\.1[89]\.\d+\.\d+$/);
    flood.signal("SIGKILL");
    const curls = await browsing.stop();
    console.log(
      `[users] ${curls.ok} curls of http://hello.demo/ succeeded, ${curls.failed} failed`,
    );
    assertEquals(curls.failures, [], "curl http://hello.demo/ kept working during the flood");
    // At most 64 connections of one address wait for their first query (DNS_TCP_LIMITS).
    watch.check("2,000 idle DNS/TCP connections", { maxRssMiB: 1024, maxFds: baseline + 64 + 40 });
  },
});

Deno.test({
  name:
    "adversarial dns: a query sent at 1 byte/s is cut at the 2 s deadline and a connection idle after its answer is closed within seconds",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using lab = await Lab.create({ resolvConf: DEMO_RESOLV });
    await startDemo(lab);
    // A background `cat` sees the server's close; it reports how long the connection lived.
    const watchClose = (fd: number, label: string) =>
      `( cat <&${fd} >/dev/null 2>&1; echo "${label} $(( ($(date +%s%N) - start) / 1000000 ))" ) &`;
    // hello.demo A, id 0x1234, RD, framed with its 2-byte length (RFC 1035 §4.2.2).
    const query = "\\000\\034\\022\\064\\001\\000\\000\\001\\000\\000\\000\\000\\000\\000" +
      "\\005hello\\004demo\\000\\000\\001\\000\\001";
    const script = `trap '' PIPE
start=$(date +%s%N)
exec 3<>/dev/tcp/${DNS}/53 4<>/dev/tcp/${DNS}/53
printf '${query}' >&4
printf '\\000\\100' >&3
${watchClose(3, "slowloris")}
${watchClose(4, "idle")}
for i in $(seq 14); do sleep 1; [ -z "$(jobs -pr)" ] && break; printf a >&3 2>/dev/null; done
kill $(jobs -p) 2>/dev/null; echo DONE`;
    const out = await lab.run("bash", ["-c", script], { timeoutMs: 20_000 });
    console.log(out.stdout.trim().replaceAll("\n", "; "));
    const lived = (label: string) =>
      Number(new RegExp(`${label} (\\d+)`).exec(out.stdout)?.[1] ?? Infinity);
    assert(lived("slowloris") < 6_000, `the 1 byte/s query held on: ${out.stdout}`);
    assert(lived("idle") < 14_000, `the idle connection stayed open: ${out.stdout}`);
    assert(lived("idle") >= 5_000, `the idle connection was closed too early: ${out.stdout}`);
  },
});

Deno.test({
  name: "adversarial dns: after a flood exhausts k8stun's descriptors, DNS over TCP accepts again",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using lab = await Lab.create({ resolvConf: DEMO_RESOLV });
    const k8stun = await startDemo(lab);
    assertMatch(await digTcp(lab), /^198\.1[89]\.\d+\.\d+$/);
    const limit = sampleResources(k8stun.pid).fds + 40;
    const prlimit = await new Deno.Command("prlimit", {
      args: ["--pid", String(k8stun.pid), `--nofile=${limit}:${limit}`],
    }).output();
    assertEquals(prlimit.code, 0, "prlimit");
    const watch = ResourceWatch.start(k8stun.pid);
    const flood = lab.spawn("bash", ["-c", idleFlood(300)]);
    await flood.waitForOutput(/OPENED/, 15_000);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const during = sampleResources(k8stun.pid).fds;
    console.log(`[exhaustion] limit ${limit} descriptors, ${during} open during the flood`);
    assert(during >= limit - 2, `the flood did not exhaust the descriptors (${during} open)`);
    flood.signal("SIGKILL");
    await flood.status;
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    let answer = "";
    for (let i = 0; i < 3 && answer === ""; i++) answer = await digTcp(lab);
    assertMatch(answer, /^198\.1[89]\.\d+\.\d+$/, "DNS over TCP answers again after the flood");
    // Descriptors opened before the limit was lowered may lie above it.
    watch.check("descriptor exhaustion (DNS/TCP)", { maxRssMiB: 1024, maxFds: limit + 8 });
  },
});
