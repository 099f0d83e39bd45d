/** Which interface reaches a resolver, from /proc/net/route text. */
import { assertEquals } from "../assert.ts";
import { outgoingInterface, parseProcRoutes } from "../../ffi/linux/route_lookup.ts";

// Captured from a machine: default via 192.0.2.1 on eth0, 192.0.2.0/24 on eth0, 10.77.0.0/24 on
// veth0 (metric 0) and a less preferred copy on wlan0 (metric 600).
const PROC_NET_ROUTE =
  `Iface	Destination	Gateway 	Flags	RefCnt	Use	Metric	Mask		MTU	Window	IRTT
eth0	00000000	010200C0	0003	0	0	0	00000000	0	0	0
eth0	000200C0	00000000	0001	0	0	0	00FFFFFF	0	0	0
wlan0	00004D0A	00000000	0001	0	0	600	00FFFFFF	0	0	0
veth0	00004D0A	00000000	0001	0	0	0	00FFFFFF	0	0	0
`;

const ip = (a: number, b: number, c: number, d: number) =>
  ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;

Deno.test("route lookup: longest prefix, then lowest metric; the default route last", () => {
  const rows = parseProcRoutes(PROC_NET_ROUTE);
  assertEquals(rows.length, 4);
  assertEquals(outgoingInterface(ip(10, 77, 0, 2), rows), "veth0");
  assertEquals(outgoingInterface(ip(192, 0, 2, 53), rows), "eth0");
  assertEquals(outgoingInterface(ip(8, 8, 8, 8), rows), "eth0");
  assertEquals(outgoingInterface(ip(8, 8, 8, 8), rows.slice(1)), undefined, "no default route");
});
