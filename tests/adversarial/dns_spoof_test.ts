/**
 * Forged replies to forwarded queries (RFC 5452 §9.1): the lab's upstream answers
 * spoof.public-example.com late, after forgeries from another address, from another port, with
 * another id and for other questions. k8stun must pass on only the real answer, in `tun_route`
 * mode (device-bound, connected sockets) and in `forward` mode (plain sockets).
 */
import { assertEquals } from "../assert.ts";
import { Lab, labUnavailable } from "../lab/lab.ts";
import { startDemo } from "./harness.ts";

const ignore = labUnavailable() !== undefined;
const UPSTREAM = new URL("../lab/upstream_dns.ts", import.meta.url).pathname;
/** A second address of the upstream's namespace, for forgeries from the wrong source. */
const FORGER = "10.77.0.3";

for (const mode of ["tun_route", "forward"]) {
  Deno.test({
    name:
      `adversarial dns (${mode}): forged upstream replies are ignored and the real answer is delivered`,
    ignore,
    sanitizeResources: false,
    sanitizeOps: false,
    async fn() {
      await using lab = await Lab.create({
        resolvConf: "nameserver 10.77.0.2\noptions ndots:1 timeout:2\n",
      });
      const peer = await lab.addPeer();
      const alias = await peer.spawn("ip", ["addr", "add", `${FORGER}/32`, "dev", "lo"]).status;
      assertEquals(alias.code, 0, "a second address for the forger");
      await peer.spawn(Deno.execPath(), ["run", "-A", UPSTREAM, "--spoof-from", FORGER])
        .waitForOutput(/READY/, 30_000);
      const dig = (...args: string[]) =>
        lab.run("dig", ["+short", "+tries=1", "+time=3", ...args]).then((r) => r.stdout.trim());
      assertEquals(await dig("www.public-example.com"), "203.0.113.7", "the upstream answers");

      await startDemo(lab, ["--dns-mode", mode]);
      for (let i = 0; i < 3; i++) {
        assertEquals(await dig("spoof.public-example.com"), "203.0.113.9", `lookup ${i + 1}`);
      }
      assertEquals(await dig("www.public-example.com"), "203.0.113.7");
    },
  });
}
