/**
 * A local program opens connections through the TUN and holds them, as many as it can. Each
 * costs k8stun memory and the API server a port-forward stream; before the limit, 16,000 of them
 * grew k8stun to 1 GiB in five seconds. Now `--max-connections` bounds them: past it a connection
 * is refused at once (ECONNREFUSED), counted in /metrics and logged once, and when the holder lets
 * go, connections are taken again.
 */
import { assert, assertEquals } from "../assert.ts";
import { labTest } from "../lab/lab.ts";
import { DEMO_RESOLV, ResourceWatch, startDemo, vipOf } from "./harness.ts";

const LIMIT = 300;
const ATTEMPTS = 500;
const API_PORT = "8798";

/** Opens `count` connections to `host`:80 one after another and holds them; prints the tally. */
const HOLDER = `
const [host, count] = [Deno.args[0], Number(Deno.args[1])];
const open = [];
const errors = {};
for (let i = 0; i < count; i++) {
  try {
    open.push(await Deno.connect({ hostname: host, port: 80 }));
  } catch (error) {
    errors[error.name] = (errors[error.name] ?? 0) + 1;
  }
}
console.log("HELD " + open.length + " " + JSON.stringify(errors));
await new Promise((resolve) => setTimeout(resolve, 60_000)); // until killed
`;

labTest(
  `adversarial: a program holding ${ATTEMPTS} connections gets ${LIMIT} (--max-connections), the rest refused at once and counted; connections work again once it lets go`,
  async (lab) => {
    const k8stun = await startDemo(lab, [
      "--max-connections",
      String(LIMIT),
      "--early-connect",
      "0",
      "--http",
      API_PORT,
    ]);
    const vip = await vipOf(lab, "hello.demo");
    const watch = ResourceWatch.start(k8stun.pid);
    const holder = lab.spawn(Deno.execPath(), ["eval", HOLDER, vip, String(ATTEMPTS)]);
    const [, held, errors] = await holder.waitForOutput(/HELD (\d+) (\{.*\})/, 120_000);
    assertEquals(Number(held), LIMIT, `connections held (refusals: ${errors})`);
    assertEquals(JSON.parse(errors), { ConnectionRefused: ATTEMPTS - LIMIT });

    const metrics = (await lab.run("curl", ["-s", `http://127.0.0.1:${API_PORT}/metrics`])).stdout;
    const counted = /^k8stun_dial_errors_total\{reason="connection_limit"\} (\d+)$/m.exec(metrics);
    assertEquals(Number(counted?.[1]), ATTEMPTS - LIMIT, "refusals counted in /metrics");
    const warnings = k8stun.output.match(/the most allowed \(--max-connections\)/g) ?? [];
    assertEquals(warnings.length, 1, "one warning, not one per refused connection");
    const refusedCurl = await lab.run("curl", ["-sS", "--max-time", "3", "http://hello.demo/"]);
    assert(refusedCurl.code !== 0, "at the limit, a new connection is refused");

    holder.child.kill("SIGKILL"); // its connections end with it (the kernel resets them)
    await holder.child.status;
    // Its connections close (FIN or reset, then the pod's side); each new one asks the limit
    // again, and the first once they are well below it says so in the log.
    const recovered = /new ones are taken again \(\d+ refused meanwhile\)/;
    let curl;
    for (const deadline = Date.now() + 20_000; Date.now() < deadline;) {
      curl = await lab.run("curl", ["-sS", "--max-time", "3", "http://hello.demo/"]);
      if (curl.code === 0 && recovered.test(k8stun.output)) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assertEquals(curl?.code, 0, `curl once the holder let go: ${curl?.stderr}`);
    assert(recovered.test(k8stun.output), "the log says connections are taken again");
    watch.check(`${ATTEMPTS} connections held`, { maxRssMiB: 400, maxFds: 1000 });
  },
  { resolvConf: DEMO_RESOLV },
);
