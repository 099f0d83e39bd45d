/**
 * The host network per OS: Linux reads every routing table and can divert DNS by policy rules;
 * elsewhere (macOS) nothing Linux-only is opened, so TUN mode can start there.
 */
import { assert, assertEquals } from "../assert.ts";
import { openHostNetwork } from "../../ffi/host_network.ts";

Deno.test("host network: on macOS no Linux library is opened and there are no DNS policy rules", () => {
  const darwin = openHostNetwork("darwin");
  assertEquals(darwin.routedRanges(), []);
  assertEquals(darwin.divertDns, undefined);
  assertEquals(darwin.ruleUndo, undefined);
  darwin.close();
});

Deno.test({
  name: "host network: on Linux the route dump sees loopback and the rules can be undone",
  ignore: Deno.build.os !== "linux",
  fn() {
    const linux = openHostNetwork("linux");
    try {
      const ranges = linux.routedRanges();
      assert(ranges.some((r) => r.dst === 0x7f000000 && r.prefix === 8), JSON.stringify(ranges));
      assert(linux.divertDns && linux.ruleUndo);
    } finally {
      linux.close();
    }
  },
});
