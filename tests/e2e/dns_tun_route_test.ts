/**
 * DNS mode `tun_route` in a lab whose resolver is a real server behind a veth link (a peer
 * namespace serving a public-looking name): resolv.conf is never touched, the resolver's address
 * is routed into the TUN, cluster names are answered there, every other name gets exactly the
 * answer it got before k8stun started, and a slow upstream never delays cluster answers (issue #5).
 */
import { assert, assertEquals, assertMatch } from "../assert.ts";
import { Lab, labUnavailable } from "../lab/lab.ts";

const ignore = labUnavailable() !== undefined;
const MAIN = new URL("../../cli/main.ts", import.meta.url).pathname;
const UPSTREAM = new URL("../lab/upstream_dns.ts", import.meta.url).pathname;

/** dig's answer section only, TTLs dropped (the answer, not its age). */
async function answers(lab: Lab, ...args: string[]): Promise<string> {
  const out = await lab.run("dig", ["+noall", "+answer", "+tries=1", "+time=3", ...args]);
  return out.stdout.split("\n").map((l) => l.split(/\s+/).filter((_, i) => i !== 1).join(" "))
    .filter(Boolean).join("\n");
}

Deno.test({
  name: "e2e: tun_route answers cluster names in the TUN and leaves every other answer unchanged",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const resolvConf = "nameserver 10.77.0.2\noptions ndots:1 timeout:2\n";
    await using lab = await Lab.create({ resolvConf });
    const peer = await lab.addPeer();
    await peer.spawn(Deno.execPath(), ["run", "-A", UPSTREAM]).waitForOutput(/READY/, 30_000);

    const before = {
      public: await answers(lab, "www.public-example.com"),
      big: await answers(lab, "TXT", "big.public-example.com"),
      missing: (await lab.run("dig", ["nosuch.public-example.com"])).stdout,
    };
    assertMatch(before.public, /www\.public-example\.com\. IN A 203\.0\.113\.7/);
    assertEquals(before.big.split("\n").length, 40, "the big answer needs TCP");

    const k8stun = lab.spawn(Deno.execPath(), ["run", "-A", MAIN, "demo"]);
    const [, tun] = await k8stun.waitForOutput(/k8stun is ready on (\S+)/, 60_000);
    assertMatch(k8stun.output, /resolvers "?10\.77\.0\.2"? now reach k8stun through/);
    assertEquals(await Deno.readTextFile(lab.resolvConfPath), resolvConf, "resolv.conf untouched");
    const routes = await lab.run("ip", ["-4", "route"]);
    assertMatch(routes.stdout, new RegExp(`10\\.77\\.0\\.2 dev ${tun} proto static scope link`));

    const vip = (await lab.run("dig", ["+short", "hello.demo"])).stdout.trim();
    assertMatch(vip, /^198\.1[89]\.\d+\.\d+$/);
    assertEquals((await lab.run("dig", ["+short", "+tcp", "hello.demo"])).stdout.trim(), vip);
    const getent = await lab.run("getent", ["hosts", "db-0.db.demo"]);
    assertMatch(getent.stdout, /^198\.1[89]\.\d+\.\d+\s+db-0\.db\.demo/);
    const curl = await lab.run("curl", ["-s", "-m", "5", "http://hello.demo/"]);
    assertMatch(curl.stdout, /^hello from hello-/);

    assertEquals(await answers(lab, "www.public-example.com"), before.public);
    assertEquals(await answers(lab, "TXT", "big.public-example.com"), before.big, "TC, then TCP");
    const missing = (await lab.run("dig", ["nosuch.public-example.com"])).stdout;
    assertEquals(/status: (\w+)/.exec(missing)?.[1], /status: (\w+)/.exec(before.missing)?.[1]);

    // A 2 s-slow upstream name in flight; 100 cluster queries meanwhile, each under 50 ms.
    const slow = lab.run("dig", ["+short", "+time=5", "slow.public-example.com"]);
    const burst = await lab.sh(
      "for i in $(seq 100); do dig +tries=1 +time=2 hello.demo | grep 'Query time'; done",
    );
    const times = [...burst.stdout.matchAll(/Query time: (\d+) msec/g)].map((m) => Number(m[1]));
    assertEquals(times.length, 100, burst.stdout);
    assert(Math.max(...times) < 50, `slowest cluster answer ${Math.max(...times)} ms`);
    assertEquals((await slow).stdout.trim(), "203.0.113.8");

    k8stun.signal("SIGTERM");
    await k8stun.status;
    const after = await lab.run("ip", ["-4", "route"]);
    assert(!after.stdout.includes("10.77.0.2 dev"), after.stdout);
    assertEquals(await answers(lab, "www.public-example.com"), before.public);
  },
});
