/**
 * rtnetlink on a live kernel, inside a fresh network namespace only (`unshare -n`): the host's
 * routes are never touched, and the namespace with its TUNs dies with the probe
 * (docs/platform.md §3.2–§3.6). Skipped without root, /dev/net/tun or util-linux's `unshare`.
 */
import { assertEquals, assertMatch } from "../assert.ts";
import { labUnavailable } from "../lab/lab.ts";

const PROBE = new URL("./rtnetlink_probe.ts", import.meta.url).pathname;

function unshareMissing(): boolean {
  try {
    return !new Deno.Command("unshare", { args: ["--version"], stdout: "null" }).outputSync()
      .success;
  } catch {
    return true;
  }
}

Deno.test({
  name: "rtnetlink: route add, duplicate (EEXIST, a clear message), delete, delete again (ESRCH " +
    "is fine); address, MTU, transmit queue and link up (docs/platform.md §3.3)",
  ignore: labUnavailable() !== undefined || unshareMissing(),
  async fn() {
    const out = await new Deno.Command("unshare", {
      args: ["-n", Deno.execPath(), "run", "-A", PROBE],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    const seen = JSON.parse(new TextDecoder().decode(out.stdout) || "{}");
    assertMatch(
      seen.added ?? stderr,
      new RegExp(`10\\.96\\.0\\.0/12 dev ${seen.tun} proto static scope link`),
    );
    assertMatch(
      seen.duplicate,
      /cannot add the route 10\.96\.0\.0\/12: a route for it already exists/,
    );
    assertEquals(seen.deleted.includes("10.96.0.0/12"), false);
    assertEquals(seen.deletedTwice, "ok");
    assertEquals(seen.errnos, [0, 0, 0, 17], "MTU, address, link up, the address again (EEXIST)");
    assertMatch(seen.configured, /<[A-Z,_]*\bUP\b[A-Z,_]*> mtu 1400 /);
    assertMatch(seen.linked, /mtu 1500 .* qlen 1000/, "MTU and transmit queue by configureLink");
    assertMatch(seen.configured, /inet 198\.18\.0\.2\/32 scope global/);
  },
});
