/**
 * Only this host's own traffic reaches the cluster (core/net/packet_loop/local_sources.ts): a neighbour
 * that routes the VIP range through a machine with `ip_forward=1` (Docker, kind and libvirt turn
 * it on) gets nothing, while the machine itself keeps working.
 */
import { assert, assertEquals, assertMatch } from "../assert.ts";
import { Lab, labUnavailable } from "../lab/lab.ts";
import { DEMO_RESOLV, startDemo, vipOf } from "./harness.ts";

const ignore = labUnavailable() !== undefined;

Deno.test({
  name:
    "forwarded neighbour: a host routing the VIP range through the tunnel's machine gets no answer, the machine itself does",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using lab = await Lab.create({ resolvConf: DEMO_RESOLV });
    const peer = await lab.addPeer();
    const k8stun = await startDemo(lab);
    const vip = await vipOf(lab, "hello.demo");
    const forward = await lab.sh("sysctl -qw net.ipv4.ip_forward=1");
    assertEquals(forward.code, 0, forward.stderr);
    const route = peer.spawn("ip", ["route", "add", "198.18.0.0/15", "via", lab.linkAddress]);
    assertEquals((await route.status).code, 0, route.output);

    const mine = await lab.run("curl", ["-s", "-m", "5", `http://${vip}/`]);
    assertEquals(mine.code, 0, mine.stderr);
    assertMatch(mine.stdout, /^hello from hello-/);

    const theirs = peer.spawn("curl", ["-s", "-m", "3", `http://${vip}/`]);
    const status = await theirs.status;
    assert(status.code !== 0, `the neighbour reached the cluster: ${theirs.output}`);
    assertEquals(theirs.output, "");
    assertMatch(k8stun.output, /dropped a packet from 10\.77\.0\.2, which is not an address/);
  },
});
