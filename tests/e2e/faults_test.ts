/**
 * Port-forward faults through the TUN, with real kernel clients in a lab namespace: `k8stun demo
 * --fixture` serves the demo cluster with a refusing hello pod, an echo pod whose connection
 * resets after 1000 bytes and a db-1 whose kubelet never answers. Issue #4: the client sees RST
 * (or ECONNREFUSED) within 2 s, never a hang, and the tunnel keeps serving other connections.
 */
import { assert, assertEquals, assertMatch } from "../assert.ts";
import { Lab, labUnavailable } from "../lab/lab.ts";
import { DEMO_FIXTURE } from "../../sim/mod.ts";

const ignore = labUnavailable() !== undefined;
const MAIN = new URL("../../cli/main.ts", import.meta.url).pathname;
const PROBE = new URL("./probe_client.ts", import.meta.url).pathname;

interface Probe {
  outcome: string;
  received: number;
  ms: number;
}

// On both Linux backends: with TUN offload and without (as on macOS).
for (const offload of ["on", "off"]) {
  Deno.test({
    name:
      `e2e (offload ${offload}): refused, reset and stalled port-forwards end in RST within 2 s; ` +
      "others keep working",
    ignore,
    sanitizeResources: false,
    sanitizeOps: false,
    async fn() {
      await using lab = await Lab.create({ resolvConf: "nameserver 127.0.0.1\noptions ndots:1\n" });
      const fixture = `${lab.dir}/faults.json`;
      await Deno.writeTextFile(
        fixture,
        JSON.stringify({
          ...DEMO_FIXTURE,
          faults: [
            { namespace: "demo", pod: "hello-7d9f-x2k4p", port: 8080, kind: "refuse" },
            {
              namespace: "demo",
              pod: "echo-5c6b-m9t2z",
              port: 7007,
              kind: "reset",
              afterBytes: 1000,
            },
            { namespace: "demo", pod: "db-1", port: 5432, kind: "stall" },
          ],
        }),
      );
      const k8stun = lab.spawn(Deno.execPath(), [
        "run",
        "-A",
        MAIN,
        "demo",
        "--fixture",
        fixture,
        "--tun-offload",
        offload,
      ]);
      await k8stun.waitForOutput(/k8stun is ready on (\S+)/, 60_000);
      const probe = async (host: string, port: number, bytes: number): Promise<Probe> => {
        const out = await lab.run(Deno.execPath(), [
          "run",
          "-A",
          PROBE,
          host,
          String(port),
          `${bytes}`,
        ]);
        return JSON.parse(out.stdout);
      };

      for (let i = 0; i < 6; i++) {
        const curl = await lab.run("curl", ["-s", "-m", "5", "http://hello.demo/"]);
        assertEquals(curl.code, 0, curl.stderr);
        assertMatch(curl.stdout, /^hello from hello-7d9f-q8w3n /, "the refusing pod is skipped");
      }

      const reset = await probe("echo.demo", 7, 5000);
      assertEquals(reset.outcome, "reset", `a pod reset is a reset, not a clean end: ${reset.ms}`);
      assert(reset.received <= 1000, `no bytes past the reset (${reset.received})`);
      assert(reset.ms < 2000, `${reset.ms} ms`);

      const [stalled, meanwhile] = await Promise.all([
        probe("db-1.db.demo", 5432, 10),
        lab.run("curl", ["-s", "-m", "5", "http://hello.demo/"]),
      ]);
      assertEquals(stalled.outcome, "reset", JSON.stringify(stalled));
      assert(stalled.ms < 2000, `stalled forward ended after ${stalled.ms} ms`);
      assertMatch(meanwhile.stdout, /^hello from/, "other connections are served meanwhile");

      const db0 = await lab.sh("printf 'x' | nc -N db-0.db.demo 5432");
      assertEquals(db0.stdout, "db-0\nx", "the session still serves db-0 afterwards");
      k8stun.signal("SIGTERM");
      await k8stun.status;
    },
  });
}
