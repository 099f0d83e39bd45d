/**
 * DNS mode `tun_route` in a lab whose resolver is a real server behind a veth link (a peer
 * namespace serving a public-looking name): resolv.conf is never touched, DNS to the resolver
 * (and only DNS) is diverted into the TUN by policy rules, cluster names are answered there,
 * every other name gets exactly the answer it got before k8stun started, and a slow upstream
 * never delays cluster answers. Killed with SIGKILL, its rules stay until `k8stun cleanup`.
 */
import { assert, assertEquals, assertMatch } from "../assert.ts";
import { Lab, labTest, labUnavailable } from "../lab/lab.ts";
import { DEMO_FIXTURE } from "../../sim/mod.ts";
import { startDemo } from "../adversarial/harness.ts";

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
    // The resolver's host also serves something else (a home router's admin page).
    peer.spawn("sh", ["-c", "while true; do printf 'router admin\n' | nc -l -p 8080 -q 1; done"]);

    const before = {
      public: await answers(lab, "www.public-example.com"),
      big: await answers(lab, "TXT", "big.public-example.com"),
      missing: (await lab.run("dig", ["nosuch.public-example.com"])).stdout,
    };
    assertMatch(before.public, /www\.public-example\.com\. IN A 203\.0\.113\.7/);
    assertEquals(before.big.split("\n").length, 40, "the big answer needs TCP");

    // The demo cluster plus an ExternalName service pointing at the public name.
    const fixture = `${lab.dir}/fixture.json`;
    const [demo, ...others] = DEMO_FIXTURE.namespaces;
    const search = {
      name: "search",
      headless: false,
      externalName: "www.public-example.com",
      ports: [],
    };
    await Deno.writeTextFile(
      fixture,
      JSON.stringify({
        namespaces: [{ ...demo, services: [...demo.services, search] }, ...others],
      }),
    );
    const k8stun = lab.spawn(Deno.execPath(), [
      "run",
      "-A",
      MAIN,
      "demo",
      "--fixture",
      fixture,
    ]);
    const [, tun] = await k8stun.waitForOutput(/k8stun is ready on (\S+)/, 60_000);
    assertMatch(k8stun.output, /resolvers "?10\.77\.0\.2"? now reach k8stun through/);
    assertEquals(await Deno.readTextFile(lab.resolvConfPath), resolvConf, "resolv.conf untouched");
    // Only DNS to the resolver is diverted (policy rules into k8stun's table), nothing else.
    const rules = (await lab.run("ip", ["rule"])).stdout;
    assertMatch(rules, /from all to 10\.77\.0\.2 ipproto udp dport 53 lookup 18153/);
    assertMatch(rules, /from all to 10\.77\.0\.2 ipproto tcp dport 53 lookup 18153/);
    const table = (await lab.run("ip", ["-4", "route", "show", "table", "18153"])).stdout;
    assertMatch(table, new RegExp(`10\\.77\\.0\\.2 dev ${tun}`));
    const routes = await lab.run("ip", ["-4", "route"]);
    assert(!routes.stdout.includes(`10.77.0.2 dev ${tun}`), "no route takes all its traffic");
    const admin = await lab.sh("nc -w 3 10.77.0.2 8080 </dev/null");
    assertEquals(
      admin.stdout,
      "router admin\n",
      "other ports of the resolver take the normal path",
    );
    assertMatch(
      routes.stdout,
      new RegExp(`198\\.18\\.0\\.0/15 dev ${tun} proto static scope link`),
    );

    const short = async (...args: string[]) =>
      (await lab.run("dig", ["+short", ...args])).stdout.trim();
    const vip = await short("hello.demo");
    assertMatch(vip, /^198\.1[89]\.\d+\.\d+$/);
    for (const form of ["hello.demo.svc", "hello.demo.svc.cluster.local"]) {
      assertEquals(await short(form), vip, form);
    }
    const db0 = await short("db-0.db.demo");
    assertEquals(await short("db-0.db.demo.svc.cluster.local"), db0);
    const headless = (await short("db.demo")).split("\n").sort();
    assertEquals(headless.length, 2, "a headless service names each ready pod");
    assert(headless.includes(db0));
    const db1 = headless.find((v) => v !== db0)!;
    const podIp = await simPodIp(lab, k8stun.output, "db-1");
    const dashed = podIp.replaceAll(".", "-");
    assertEquals(await short(`${dashed}.demo.pod`), db1);
    assertEquals(await short(`${dashed}.demo.pod.cluster.local`), db1);
    assertEquals(
      (await short("SRV", "_pg._tcp.db.demo.svc.cluster.local")).split("\n").sort(),
      ["0 50 5432 db-0.db.demo.svc.cluster.local.", "0 50 5432 db-1.db.demo.svc.cluster.local."],
      "a headless service's SRV names each ready pod",
    );
    assertEquals(
      (await short("search.demo")).split("\n"),
      ["www.public-example.com.", "203.0.113.7"],
      "ExternalName: CNAME, chased upstream",
    );
    assertMatch((await lab.run("getent", ["hosts", "search.demo"])).stdout, /^203\.0\.113\.7\s/);
    assertEquals(await short("-x", vip), "hello.demo.svc.cluster.local.");
    const aaaa = (await lab.run("dig", ["AAAA", "hello.demo"])).stdout;
    assertMatch(aaaa, /status: NOERROR/);
    assertMatch(aaaa, /ANSWER: 0,/);
    assertMatch((await lab.run("dig", ["nosuch.demo"])).stdout, /status: NXDOMAIN/);
    assertEquals((await lab.run("dig", ["+short", "+tcp", "hello.demo"])).stdout.trim(), vip);
    const getent = await lab.run("getent", ["hosts", "db-0.db.demo"]);
    assertMatch(getent.stdout, /^198\.1[89]\.\d+\.\d+\s+db-0\.db\.demo/);
    const curl = await lab.run("curl", ["-s", "-m", "5", "http://hello.demo/"]);
    assertMatch(curl.stdout, /^hello from hello-/);

    assertEquals(await answers(lab, "www.public-example.com"), before.public);
    assertEquals(await answers(lab, "TXT", "big.public-example.com"), before.big, "TC, then TCP");
    const missing = (await lab.run("dig", ["nosuch.public-example.com"])).stdout;
    assertEquals(/status: (\w+)/.exec(missing)?.[1], /status: (\w+)/.exec(before.missing)?.[1]);

    // A 2 s-slow upstream name in flight; 100 cluster queries meanwhile, none waiting for it.
    const slow = lab.run("dig", ["+short", "+time=5", "slow.public-example.com"]);
    const burst = await lab.sh(
      "for i in $(seq 100); do dig +tries=1 +time=2 hello.demo | grep 'Query time'; done",
    );
    const times = [...burst.stdout.matchAll(/Query time: (\d+) msec/g)].map((m) => Number(m[1]));
    assertEquals(times.length, 100, burst.stdout);
    // Waiting on the slow name would take 2 s; the bound leaves room for a loaded machine.
    assert(Math.max(...times) < 1000, `slowest cluster answer ${Math.max(...times)} ms`);
    assertEquals((await slow).stdout.trim(), "203.0.113.8");

    k8stun.signal("SIGTERM");
    await k8stun.status;
    const after = await lab.run("ip", ["-4", "route", "show", "table", "all"]);
    assert(!after.stdout.includes(`10.77.0.2 dev ${tun}`), after.stdout);
    const rulesAfter = (await lab.run("ip", ["rule"])).stdout;
    assert(!rulesAfter.includes("lookup 18153"), rulesAfter);
    assertEquals(await answers(lab, "www.public-example.com"), before.public);
  },
});

/** A pod's IP, read from the simulated cluster's API with the kubeconfig the demo printed. */
async function simPodIp(lab: Lab, output: string, pod: string): Promise<string> {
  const kubeconfig = await Deno.readTextFile(/kubeconfig (\S+\/kubeconfig)/.exec(output)![1]);
  const server = /server: (\S+)/.exec(kubeconfig)![1];
  const token = /token: (\S+)/.exec(kubeconfig)![1];
  const out = await lab.run("curl", [ // the simulator listens on the lab's loopback
    "-sk",
    "-H",
    `Authorization: Bearer ${token}`,
    `${server}/api/v1/namespaces/demo/pods/${pod}`,
  ]);
  return JSON.parse(out.stdout).status.podIP;
}

Deno.test({
  name: "e2e: tun_route's DNS rules survive a SIGKILL and `k8stun cleanup` removes them",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const resolvConf = "nameserver 10.77.0.2\noptions ndots:1 timeout:2\n";
    await using lab = await Lab.create({ resolvConf });
    const peer = await lab.addPeer();
    await peer.spawn(Deno.execPath(), ["run", "-A", UPSTREAM]).waitForOutput(/READY/, 30_000);
    const k8stun = lab.spawn(Deno.execPath(), ["run", "-A", MAIN, "demo"]);
    await k8stun.waitForOutput(/k8stun is ready on (\S+)/, 60_000);
    assertMatch((await lab.run("ip", ["rule"])).stdout, /lookup 18153/);
    k8stun.signal("SIGKILL");
    await k8stun.status;
    assertMatch(
      (await lab.run("ip", ["rule"])).stdout,
      /lookup 18153/,
      "rules outlive the process",
    );
    const cleanup = await lab.run(Deno.execPath(), ["run", "-A", MAIN, "cleanup"]);
    assertEquals(cleanup.code, 0, cleanup.stderr);
    assertMatch(cleanup.stdout, /the DNS rule to 10\.77\.0\.2 \(UDP port 53\): removed/);
    assertEquals((await lab.run("ip", ["rule"])).stdout.includes("18153"), false);
    assertEquals(await Deno.readTextFile(lab.resolvConfPath), resolvConf);
  },
});

Deno.test({
  name:
    "e2e: tun_route follows the resolver to another interface (docked: the first link goes down, a second one reaches it) and names resolve again",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using lab = await Lab.create({ resolvConf: "nameserver 10.77.0.2\noptions timeout:1\n" });
    const peer = await lab.addPeer();
    await peer.spawn(Deno.execPath(), ["run", "-A", UPSTREAM]).waitForOutput(/READY/, 30_000);
    const k8stun = await startDemo(lab);
    const resolve = () =>
      lab.run("dig", ["+short", "+tries=1", "+time=2", "www.public-example.com"]);
    assertEquals((await resolve()).stdout.trim(), "203.0.113.7");

    // "Docking": a second link to the resolver's host, then the first one goes down.
    const first = (await lab.run("ip", ["-o", "-4", "addr", "show", "to", "10.77.0.1/32"]))
      .stdout.split(/\s+/)[1];
    const must = async (...args: string[]) => {
      const out = await lab.run("ip", args);
      assertEquals(out.code, 0, `ip ${args.join(" ")}: ${out.stderr}`);
    };
    await must(
      "link",
      "add",
      "dock0",
      "type",
      "veth",
      "peer",
      "name",
      "dock1",
      "netns",
      `${lab.name}-p`,
    );
    await must("addr", "add", "10.78.0.1/24", "dev", "dock0");
    await must("link", "set", "dock0", "up");
    const inPeer = async (...args: string[]) => {
      const out = await lab.run("ip", ["-n", `${lab.name}-p`, ...args]);
      assertEquals(out.code, 0, out.stderr);
    };
    await inPeer("addr", "add", "10.78.0.2/24", "dev", "dock1");
    await inPeer("link", "set", "dock1", "up");
    // The resolver answers from the address it was asked at, as a router with one address does
    // (its 0.0.0.0 socket would otherwise pick dock1's own address).
    await inPeer("route", "replace", "10.78.0.0/24", "dev", "dock1", "src", "10.77.0.2");
    await must("route", "add", "10.77.0.2/32", "via", "10.78.0.2", "dev", "dock0");
    await must("link", "set", first, "down");

    await k8stun.waitForOutput(/10\.77\.0\.2 is now reached through dock0 \(was k8l\w+\)/, 10_000);
    assertEquals((await resolve()).stdout.trim(), "203.0.113.7", "forwarded names work again");
    const cluster = await lab.run("dig", ["+short", "hello.demo"]);
    assertMatch(cluster.stdout.trim(), /^198\.1[89]\.\d+\.\d+$/, "cluster names as before");
  },
});

labTest(
  "e2e: tun_route follows the system's resolvers when they change under it (another network, a VPN's DNS): cluster names answer through the new one, other names go to it",
  async (lab) => {
    const peer = await lab.addPeer();
    // The "other network's" resolver: a second address of the peer with a server of its own
    // (each answers from the address it serves, as separate hosts would).
    const added = await new Deno.Command("ip", {
      args: ["-n", `${lab.name}-p`, "addr", "add", "10.77.0.3/32", "dev", "lo"],
    }).output();
    assert(added.success, new TextDecoder().decode(added.stderr));
    for (const address of ["10.77.0.2", "10.77.0.3"]) {
      await peer.spawn(Deno.execPath(), ["run", "-A", UPSTREAM, "--bind", address])
        .waitForOutput(/READY/, 30_000);
    }
    const k8stun = await startDemo(lab, ["--dns-mode", "tun_route"]);
    const vip = await answers(lab, "hello.demo");
    assertMatch(vip, /^hello\.demo\. IN A 198\.1[89]\./);
    const publicAnswer = await answers(lab, "www.public-example.com");

    // A VPN client (or NetworkManager on another network) writes its own nameserver.
    await Deno.writeTextFile(lab.resolvConfPath, "nameserver 10.77.0.3\noptions ndots:1\n");
    await k8stun.waitForOutput(/the system's resolvers are now 10\.77\.0\.3: their DNS/, 10_000);
    assertEquals(await answers(lab, "hello.demo"), vip, "cluster names through the new resolver");
    assertEquals(await answers(lab, "www.public-example.com"), publicAnswer, "other names too");

    k8stun.signal("SIGINT");
    assertEquals((await k8stun.status).code, 0);
    const rules = await lab.run("ip", ["rule", "show"]);
    assert(!/lookup 18153/.test(rules.stdout), `k8stun's rules are gone:\n${rules.stdout}`);
  },
  { resolvConf: "nameserver 10.77.0.2\noptions ndots:1 timeout:2\n" },
);
