/**
 * `k8stun run` in a lab while its API server goes away and comes back, and against one that
 * never answers: what the user sees in the log, in `/healthz` and in DNS.
 */
import { assert, assertEquals, assertMatch } from "../assert.ts";
import { Lab, labUnavailable } from "../lab/lab.ts";
import { relayToApi } from "../lab/outage_relay.ts";
import { inNamespace } from "../adversarial/raw_socket.ts";
import { DEMO_FIXTURE, startSimCluster } from "../../sim/mod.ts";
import { DEMO_RESOLV, MAIN } from "../adversarial/harness.ts";

const ignore = labUnavailable() !== undefined;

/** Listeners for the relay, created inside the lab (where k8stun dials the API server). */
function listenInLab(lab: Lab): (port: number) => Deno.Listener {
  return (port) => inNamespace(lab.name, () => Deno.listen({ hostname: "127.0.0.1", port }));
}

async function until<T>(probe: () => Promise<T | undefined>, ms: number, what: string): Promise<T> {
  const deadline = Date.now() + ms;
  while (true) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

Deno.test({
  name:
    "e2e: an API server outage turns /healthz to 503 unreachable with one warning each way, names keep resolving, and it recovers",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using lab = await Lab.create({ resolvConf: DEMO_RESOLV });
    await using sim = await startSimCluster({ fixture: DEMO_FIXTURE });
    await using relay = relayToApi(sim.url, listenInLab(lab));
    const kubeconfig = `${lab.dir}/kubeconfig`;
    await Deno.writeTextFile(
      kubeconfig,
      sim.kubeconfig().replaceAll(sim.url, `https://127.0.0.1:${relay.port}`),
    );
    const k8stun = lab.spawn(Deno.execPath(), [
      "run",
      "-A",
      MAIN,
      "run",
      "--kubeconfig",
      kubeconfig,
      "-n",
      "demo",
      "--http",
      "8791",
    ]);
    await k8stun.waitForOutput(/k8stun is ready on (\S+)/, 60_000);
    const health = async () => {
      const out = await lab.run("curl", [
        "-s",
        "-w",
        "\n%{http_code}",
        "http://127.0.0.1:8791/healthz",
      ]);
      const [body, code] = out.stdout.trim().split("\n");
      return { code: Number(code), body: JSON.parse(body) };
    };
    assertEquals((await health()).body.cluster, "synced");
    const vip = (await lab.run("dig", ["+short", "hello.demo"])).stdout.trim();
    assertMatch(vip, /^198\.1[89]\./);

    relay.setMode("refuse");
    const down = await until(
      async () => {
        const h = await health();
        return h.code === 503 ? h : undefined;
      },
      20_000,
      "/healthz 503",
    );
    assertEquals(down.body.cluster, "unreachable");
    assert(down.body.errors.length > 0);
    await new Promise((r) => setTimeout(r, 4000));
    const cached = await lab.run("dig", ["+short", "hello.demo"]);
    assertEquals(cached.stdout.trim(), vip, "names resolve from the last view");
    const metrics = (await lab.run("curl", ["-s", "http://127.0.0.1:8791/metrics"])).stdout;
    const restarts = [...metrics.matchAll(/^k8stun_watch_restarts_total\{[^}]*\} (\d+)/gm)]
      .reduce((sum, m) => sum + Number(m[1]), 0);
    assert(restarts < 40, `${restarts} watch restarts in the outage (no backoff: hundreds)`);
    const events = await lab.run("curl", [
      "-s",
      "-m",
      "1",
      "-H",
      "Last-Event-ID: 0",
      "http://127.0.0.1:8791/events",
    ]);
    assertMatch(events.stdout, /"type":"cluster_state","state":"unreachable"/);

    relay.setMode("forward");
    const up = await until(
      async () => {
        const h = await health();
        return h.code === 200 ? h : undefined;
      },
      20_000,
      "/healthz 200 again",
    );
    assertEquals(up.body.cluster, "synced");
    const warnings = k8stun.output.split("\n").filter((l) =>
      /API server at .* (is unreachable|answers again)/.test(l)
    );
    assertEquals(warnings.length, 2, warnings.join("\n"));
    k8stun.signal("SIGTERM");
    await k8stun.status;
  },
});

Deno.test({
  name:
    "e2e: an API server that accepts connections but never answers stops start-up after --sync-timeout with one line naming it",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using lab = await Lab.create({ resolvConf: DEMO_RESOLV });
    await using sim = await startSimCluster({ fixture: DEMO_FIXTURE });
    await using relay = relayToApi(sim.url, listenInLab(lab));
    relay.setMode("blackhole");
    const kubeconfig = `${lab.dir}/kubeconfig`;
    await Deno.writeTextFile(
      kubeconfig,
      sim.kubeconfig().replaceAll(sim.url, `https://127.0.0.1:${relay.port}`),
    );
    const started = Date.now();
    const out = await lab.run(Deno.execPath(), [
      "run",
      "-A",
      MAIN,
      "run",
      "--kubeconfig",
      kubeconfig,
      "--sync-timeout",
      "2",
    ], { timeoutMs: 30_000 });
    const took = Date.now() - started;
    assert(out.code !== 0 && out.code !== 124, `exit ${out.code}`);
    assert(took < 20_000, `took ${took} ms`);
    assertMatch(out.stderr, new RegExp(`127\\.0\\.0\\.1:${relay.port}`));
    assert(relay.accepted() > 0, "k8stun did reach the server");
    const lines = out.stderr.trim().split("\n").filter((l) => !/DeprecationWarning/.test(l));
    assertEquals(lines.length, 1, out.stderr);
    assertMatch(lines[0], /did not answer within 2 s/);
  },
});
