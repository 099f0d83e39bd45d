/** Routes over rtnetlink on a live kernel, inside a lab namespace (platform-ffi.md §5.2–§5.6). */
import { assertEquals, assertMatch } from "../assert.ts";
import { Lab, labUnavailable } from "../lab/lab.ts";

const PROBE = new URL("./rtnetlink_probe.ts", import.meta.url).pathname;

Deno.test({
  name: "rtnetlink: add, duplicate (EEXIST, a clear message), delete, delete again (ESRCH is fine)",
  ignore: labUnavailable() !== undefined,
  async fn() {
    await using lab = await Lab.create();
    const out = await lab.run(Deno.execPath(), ["run", "-A", PROBE]);
    const seen = JSON.parse(out.stdout || "{}");
    assertMatch(
      seen.added ?? out.stderr,
      new RegExp(`10\\.96\\.0\\.0/12 dev ${seen.tun} proto static scope link`),
    );
    assertMatch(
      seen.duplicate,
      /cannot add the route 10\.96\.0\.0\/12: a route for it already exists/,
    );
    assertEquals(seen.deleted.includes("10.96.0.0/12"), false);
    assertEquals(seen.deletedTwice, "ok");
  },
});
