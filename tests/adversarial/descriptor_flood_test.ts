/**
 * Descriptor floods: a local program, any user's, opens connections to whatever k8stun listens on
 * or relays, and holds them. Before, `Deno.serve` took every connection to the HTTP API: 20,000
 * idle ones reached the descriptor limit and the first failed accept ended k8stun with DNS still
 * pointed at it; and with `ulimit -n 1024`, 2,000 connections through the TUN brought Deno itself
 * to a panic. Now every listener's connections are capped (core/guarded_listener.ts, the API's
 * core/api/http_server.ts) and the caps fit the descriptor limit (core/descriptor_limit.ts): k8stun
 * stays up, the tunnel keeps working, and the API answers again once the holder lets go.
 */
import { assert, assertEquals, assertMatch } from "../assert.ts";
import { labTest } from "../lab/lab.ts";
import type { Lab, LabProcess } from "../lab/lab.ts";
import { DEMO_RESOLV, MAIN, ResourceWatch, sampleResources, vipOf } from "./harness.ts";

const API_PORT = "8798";

/**
 * Opens `count` TCP connections to `host:port` one after another and holds them (with `partial`,
 * each sends half a request head first); prints how many it holds and why the rest failed.
 */
const HOLDER = `
const [host, port, count, mode] = [Deno.args[0], Number(Deno.args[1]), Number(Deno.args[2]), Deno.args[3]];
const open = [];
const errors = {};
const partial = new TextEncoder().encode("GET /vips HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\n");
for (let i = 0; i < count; i++) {
  try {
    // A server that stopped accepting leaves connects waiting in its backlog, then unanswered:
    // the first that takes a second ends the run (the server lets in no more).
    let timer;
    const timeout = new Promise((_, reject) => timer = setTimeout(() => reject(new Error("slow")), 1000));
    const conn = await Promise.race([Deno.connect({ hostname: host, port }), timeout]).finally(() => clearTimeout(timer));
    if (mode === "partial") await conn.write(partial);
    open.push(conn);
  } catch (error) {
    if (error.message === "slow") break;
    errors[error.name] = (errors[error.name] ?? 0) + 1;
  }
}
console.log("HELD " + open.length + " " + JSON.stringify(errors));
await new Promise((resolve) => setTimeout(resolve, 300_000)); // until killed
`;

async function hold(lab: Lab, host: string, port: string, count: number, mode = "idle") {
  const holder = lab.spawn(Deno.execPath(), ["eval", HOLDER, host, port, String(count), mode]);
  const [, held] = await holder.waitForOutput(/HELD (\d+) (\{.*\})/, 120_000);
  return { holder, held: Number(held) };
}

async function release(...holders: LabProcess[]) {
  for (const holder of holders) {
    holder.child.kill("SIGKILL"); // its connections end with it
    await holder.child.status;
  }
}

async function curl(lab: Lab, url: string) {
  return await lab.run("curl", ["-sS", "--max-time", "3", url]);
}

/** Retries `url` for up to 20 s until it answers (the connections of a holder close first). */
async function eventually(lab: Lab, url: string) {
  let last;
  for (const deadline = Date.now() + 20_000; Date.now() < deadline;) {
    last = await curl(lab, url);
    if (last.code === 0) break;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return last!;
}

async function startDemo(lab: Lab, limit?: number): Promise<LabProcess> {
  const demo = [Deno.execPath(), "run", "-A", MAIN, "demo", "--http", API_PORT];
  const k8stun = limit === undefined
    ? lab.spawn(demo[0], demo.slice(1))
    : lab.spawn("prlimit", [`--nofile=${limit}:${limit}`, "--", ...demo]);
  await k8stun.waitForOutput(/k8stun is ready on (\S+)/, 60_000);
  return k8stun;
}

labTest(
  "adversarial: 20,000 idle and half-sent connections to the HTTP API are capped and the tunnel keeps working; 10,000 to the demo's simulated API server are capped; both answer once they go",
  async (lab) => {
    const k8stun = await startDemo(lab);
    const simPort = /simulated cluster at https:\/\/127\.0\.0\.1:(\d+)/.exec(k8stun.output)?.[1];
    assert(simPort, "the demo names its simulated cluster's address");
    const watch = ResourceWatch.start(k8stun.pid);
    const idle = await hold(lab, "127.0.0.1", API_PORT, 10_000);
    const partial = await hold(lab, "127.0.0.1", API_PORT, 10_000, "partial");
    console.log(`held ${idle.held} idle and ${partial.held} half-sent API connections`);
    const during = await curl(lab, "http://hello.demo/");
    assertEquals(during.code, 0, `curl through the TUN during the flood: ${during.stderr}`);
    assertMatch(during.stdout, /^hello from/);
    await release(idle.holder, partial.holder);
    const api = await eventually(lab, `http://127.0.0.1:${API_PORT}/healthz`);
    assertEquals(api.code, 0, `the API once the holders went: ${api.stderr}`);
    assertMatch(api.stdout, /"tun":"up"/);

    // The simulated API server is on loopback too: its slots can be taken (new port-forwards
    // wait), but k8stun must stay up and serve again once the holder goes.
    const sim = await hold(lab, "127.0.0.1", simPort, 10_000);
    console.log(`held ${sim.held} connections to the simulated API server`);
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert(sampleResources(k8stun.pid).fds > 0, "k8stun is up under the flood");
    await release(sim.holder);
    const after = await eventually(lab, "http://hello.demo/");
    assertEquals(after.code, 0, `curl once the sim's holder went: ${after.stderr}`);
    // The sim takes a sixteenth of the descriptor limit (20,000 in CI's lab: 1,250).
    watch.check("30,000 API and sim connections", { maxRssMiB: 400, maxFds: 1500 });
  },
  { resolvConf: DEMO_RESOLV },
);

labTest(
  "adversarial: under `ulimit -n 1024`, floods of the TUN, the API and DNS over TCP stay under the limit; k8stun keeps serving and stops cleanly",
  async (lab) => {
    const k8stun = await startDemo(lab, 1024);
    const watch = ResourceWatch.start(k8stun.pid);
    const vip = await vipOf(lab, "hello.demo");
    const resolvConf = await Deno.readTextFile(lab.resolvConfPath);
    const dns = /^nameserver (\S+)/m.exec(resolvConf)?.[1];
    assert(dns && dns !== "127.0.0.1", `k8stun's DNS address in resolv.conf:\n${resolvConf}`);
    const holders = [
      await hold(lab, vip, "80", 2_000),
      await hold(lab, "127.0.0.1", API_PORT, 2_000),
      await hold(lab, dns, "53", 2_000),
    ];
    console.log(`held ${holders.map((h) => h.held).join(" / ")} (TUN / API / DNS over TCP)`);
    const peak = watch.check("floods under ulimit -n 1024", { maxRssMiB: 600, maxFds: 1000 });
    assert(peak.fds < 1024);
    const dig = await lab.run("dig", ["+short", "+time=2", "hello.demo"]);
    assertEquals(dig.stdout.trim(), vip, "DNS answers during the floods");
    await release(...holders.map((h) => h.holder));
    const after = await eventually(lab, "http://hello.demo/");
    assertEquals(after.code, 0, `curl once the holders went: ${after.stderr}`);
    assertEquals((await eventually(lab, `http://127.0.0.1:${API_PORT}/healthz`)).code, 0);
    k8stun.signal("SIGINT");
    const status = await k8stun.child.status;
    assertEquals(status.code, 0, k8stun.output.slice(-2000));
    assertEquals(await Deno.readTextFile(lab.resolvConfPath), DEMO_RESOLV, "resolv.conf restored");
  },
  { resolvConf: DEMO_RESOLV },
);
