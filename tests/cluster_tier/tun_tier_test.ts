/**
 * TUN mode against the real control plane: everything runs inside one lab namespace (the control
 * plane on the lab's loopback, k8stun, and the clients), so `curl http://hello.demo/` goes through
 * the TUN, k8stun's DNS, and a port-forward through the real kube-apiserver and kwok.
 */
import { assertEquals, assertMatch } from "../assert.ts";
import { cachedBinaries } from "../lab/kube/control_plane.ts";
import { Lab, labUnavailable } from "../lab/lab.ts";

const bin = await cachedBinaries();

Deno.test({
  name:
    "cluster tier: curl by service and StatefulSet pod name through the TUN reaches the pod behind kwok; 20 MiB and 1 GiB echoes come back byte-exact",
  ignore: bin === undefined || labUnavailable() !== undefined,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using lab = await Lab.create({ resolvConf: "nameserver 127.0.0.1\noptions timeout:1\n" });
    const script = new URL("./tun_in_lab.ts", import.meta.url).pathname;
    const out = await lab.run(Deno.execPath(), ["run", "-A", script, bin!], { timeoutMs: 420_000 });
    const line = out.stdout.trim().split("\n").at(-1) ?? "";
    const results = JSON.parse(line.startsWith("{") ? line : "{}");
    assertEquals(results.ready, "true", out.stderr.slice(-2000));
    assertMatch(results.curl, /^hello from hello-[ab]/);
    assertMatch(results.fqdn, /^hello from hello-[ab]/);
    assertEquals(results.statefulset, "db-0\nx");
    assertMatch(results.dig, /^198\.1[89]\.\d+\.\d+/);
    assertEquals(results.echo20MiB, "byte-exact");
    assertEquals(results.echo1GiB, "byte-exact");
  },
});
