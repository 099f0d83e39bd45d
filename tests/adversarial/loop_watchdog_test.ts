/**
 * A packet loop that stops working is noticed and reported (core/net/data_plane/data_plane.ts): one
 * that spins shows as `tun: "stalled"` with a 503 from /healthz within seconds, one that fails is
 * replaced and new connections work again. The faults come from the test hook
 * K8STUN_TEST_LOOP_FAULT (`spin@<ms>`, `throw@<ms>` after the loop started).
 */
import { assert, assertEquals, assertMatch } from "../assert.ts";
import { Lab, labUnavailable } from "../lab/lab.ts";
import type { LabProcess } from "../lab/lab.ts";
import { DEMO_RESOLV, MAIN } from "./harness.ts";

const ignore = labUnavailable() !== undefined;
const API = "http://127.0.0.1:8795";

async function demoWithFault(lab: Lab, fault: string): Promise<LabProcess> {
  const k8stun = lab.spawn(Deno.execPath(), ["run", "-A", MAIN, "demo", "--http", "8795"], {
    env: { K8STUN_TEST_LOOP_FAULT: fault },
  });
  await k8stun.waitForOutput(/k8stun is ready on (\S+)/, 60_000);
  return k8stun;
}

async function healthz(lab: Lab): Promise<{ code: number; body: Record<string, unknown> }> {
  const out = await lab.run("curl", ["-s", "-m", "3", "-w", "\n%{http_code}", `${API}/healthz`]);
  const [body, code] = out.stdout.split("\n");
  return { code: Number(code), body: body ? JSON.parse(body) : {} };
}

/** Polls /healthz until `check` holds or `ms` pass; the last answer. */
async function healthzUntil(
  lab: Lab,
  check: (health: { code: number; body: Record<string, unknown> }) => boolean,
  ms: number,
) {
  const deadline = Date.now() + ms;
  let health = await healthz(lab);
  while (!check(health) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    health = await healthz(lab);
  }
  return health;
}

Deno.test({
  name:
    "loop watchdog: a packet loop that spins shows in /healthz as tun stalled with 503 within seconds",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using lab = await Lab.create({ resolvConf: DEMO_RESOLV });
    const k8stun = await demoWithFault(lab, "spin@3000");
    const stalled = await healthzUntil(lab, (h) => h.body.tun === "stalled", 12_000);
    assertEquals(stalled.code, 503, JSON.stringify(stalled.body));
    assertEquals(stalled.body.status, "degraded");
    assertMatch(String(stalled.body.errors), /packet loop is stalled/);
    const curl = await lab.run("curl", ["-s", "-m", "2", "http://hello.demo/"]);
    assert(curl.code !== 0, "the stalled loop serves nothing");
    assertMatch(k8stun.output, /packet loop stalled: no progress for \d+ s/);
  },
});

Deno.test({
  name: "loop watchdog: a packet loop that fails is reported and replaced; new connections work",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using lab = await Lab.create({ resolvConf: DEMO_RESOLV });
    const k8stun = await demoWithFault(lab, "throw@3000");
    const replaced = await healthzUntil(lab, (h) => h.body.tun_restarts === 1, 12_000);
    assertEquals(replaced.code, 200, JSON.stringify(replaced.body));
    assertEquals(replaced.body.tun, "up");
    assertMatch(
      k8stun.output,
      /packet loop failed: test fault injected into the packet loop; starting a new packet loop/,
    );
    const curl = await lab.run("curl", ["-s", "-m", "5", "http://hello.demo/"]);
    assertEquals(curl.code, 0, curl.stderr);
    assertMatch(curl.stdout, /^hello from hello-/);
  },
});
