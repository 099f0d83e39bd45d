/**
 * Runs inside a lab namespace (started by tun_tier_test.ts): brings the real control plane up on
 * the lab's loopback, applies the demo-like fixture, starts `k8stun run` in TUN mode against it,
 * and prints one JSON line with what real clients saw.
 */
import { startControlPlane } from "../lab/kube/control_plane.ts";
import { applyDemoFixture } from "../lab/kube/fixtures.ts";
import { pseudoRandomBytes } from "../lab/pseudo_random.ts";

const bin = Deno.args[0];
const main = new URL("../../cli/main.ts", import.meta.url).pathname;
const cp = await startControlPlane({ bin });
const servers = await applyDemoFixture(cp);
const k8stun = new Deno.Command(Deno.execPath(), {
  args: [
    "run",
    "-A",
    main,
    "run",
    "--kubeconfig",
    cp.kubeconfigPath,
    "-n",
    "demo",
    "--dns-mode",
    "forward",
  ],
  stdout: "piped",
  stderr: "piped",
}).spawn();
const results: Record<string, string> = {};
try {
  const reader = k8stun.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let output = "";
  const deadline = Date.now() + 60_000;
  while (!output.includes("is ready") && Date.now() < deadline) {
    const { value, done } = await reader.read();
    if (done) break;
    output += value;
  }
  results.ready = String(output.includes("is ready"));
  const sh = async (script: string) => {
    const out = await new Deno.Command("sh", { args: ["-c", script], stdout: "piped" }).output();
    return new TextDecoder().decode(out.stdout);
  };
  // EndpointSlices come from the real controller a moment after the pods turn ready.
  for (let i = 0; i < 50; i++) {
    results.curl = await sh("curl -s -m 5 http://hello.demo/");
    if (results.curl.startsWith("hello from")) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  results.fqdn = await sh("curl -s -m 5 http://hello.demo.svc.cluster.local/");
  results.statefulset = await sh("printf x | timeout 10 nc -N db-0.db.demo 5432");
  results.dig = await sh("dig +short hello.demo");
  // 20 MiB and 1 GiB to db-0 (its banner, then an echo) and back at once through the API server,
  // hashed as they return and compared with the hash of the banner and what was sent.
  for (
    const [label, bytes] of [["echo20MiB", 20 * 1024 * 1024], ["echo1GiB", 1024 ** 3]] as const
  ) {
    const expected = await sh(`{ printf 'db-0\\n'; ${pseudoRandomBytes(bytes)}; } | sha256sum`);
    const echoed = await sh(
      `${pseudoRandomBytes(bytes)} | timeout 240 nc -N db-0.db.demo 5432 | sha256sum`,
    );
    results[label] = /^[0-9a-f]{64} /.test(expected) && echoed === expected
      ? "byte-exact"
      : `${echoed.trim()} instead of ${expected.trim()}`;
  }
  reader.releaseLock();
} finally {
  k8stun.kill("SIGTERM");
  await k8stun.status;
  for (const s of servers) s.close();
  await cp.stop();
}
console.log(JSON.stringify(results));
