/**
 * tun_route's DNS diversion by policy rules, live in a fresh network namespace: DNS (UDP and TCP
 * port 53) to the resolver goes into the TUN, other ports and sockets bound to the physical
 * interface take the normal path, the route dump sees k8stun's table, and the rules come off.
 */
import { assertEquals, assertMatch } from "../assert.ts";
import { labUnavailable } from "../lab/lab.ts";
import { isDiversionRule } from "../../ffi/linux/dns_diversion.ts";

const PROBE = new URL("./policy_rule_probe.ts", import.meta.url).pathname;

Deno.test({
  name:
    "dns diversion: only port 53 to the resolver enters the TUN; the rules are journaled and removed",
  ignore: labUnavailable() !== undefined,
  async fn() {
    const out = await new Deno.Command("unshare", {
      args: ["-n", Deno.execPath(), "run", "-A", PROBE],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    const seen = JSON.parse(new TextDecoder().decode(out.stdout) || "{}");
    assertEquals(out.code, 0, stderr);
    assertMatch(
      seen.rules,
      /5199:\s+from all to 10\.9\.0\.53 ipproto udp dport 53 lookup 18153 proto static/,
    );
    assertMatch(
      seen.rules,
      /5199:\s+from all to 10\.9\.0\.53 ipproto tcp dport 53 lookup 18153 proto static/,
    );
    assertMatch(seen.dnsUdp, new RegExp(`dev ${seen.tun} table 18153`));
    assertMatch(seen.dnsTcp, new RegExp(`dev ${seen.tun} table 18153`));
    assertMatch(seen.web, /dev up0/, "the resolver's other ports take the normal path");
    assertMatch(seen.bound, /dev up0/, "upstream sockets bound to the interface are not diverted");
    assertEquals(seen.journaled, 2);
    assertEquals(seen.dumped, [seen.tun]);
    assertEquals(/5199/.test(seen.rulesAfter), false, seen.rulesAfter);
  },
});

Deno.test("dns diversion: cleanup removes only k8stun's own diversion rules", () => {
  const ours = { dst: 1, dstPrefix: 32, ipProto: 17, dport: 53, table: 18153, priority: 5199 };
  assertEquals(isDiversionRule(ours), true);
  assertEquals(isDiversionRule({ ...ours, table: 254 }), false);
  assertEquals(isDiversionRule({ ...ours, priority: 0 }), false);
  assertEquals(isDiversionRule({ ...ours, dport: 22 }), false);
  assertEquals(isDiversionRule({ ...ours, dstPrefix: 0 }), false);
});
