import { assertEquals, assertThrows } from "../assert.ts";
import {
  parseDnsMode,
  parseListenAddress,
  parseServices,
  runFlags,
} from "../../cli/run_options.ts";
import { parseFlags } from "./parse_flags.ts";

const parse = (...args: string[]) => parseFlags(runFlags({ namespaces: ["default"] }), args);

Deno.test("run options: defaults match the Rust k8stun where it worked (docs/compatibility.md §1)", () => {
  const o = parse();
  assertEquals(o.namespaces, ["default"]);
  assertEquals(o.namespacesExplicit, false);
  assertEquals(o.autoDiscover, true);
  assertEquals(o.mtu, 1500);
  assertEquals(o.idleTimeoutSeconds, 300);
  assertEquals(o.dnsMode, "tun_route");
  assertEquals(o.staleVipTimeoutSeconds, 600);
  assertEquals(o.http, 0);
  assertEquals(o.clusterDomain, "cluster.local");
});

Deno.test("run options: --auto-discover takes every boolean spelling (docs/compatibility.md §1)", () => {
  assertEquals(parse("--auto-discover=false").autoDiscover, false);
  assertEquals(parse("--auto-discover", "false").autoDiscover, false);
  assertEquals(parse("--auto-discover", "no").autoDiscover, false);
  assertEquals(parse("--no-auto-discover").autoDiscover, false);
  assertEquals(parse("--auto-discover").autoDiscover, true);
  assertEquals(parse("--auto-discover=TRUE").autoDiscover, true);
  assertThrows(() => parse("--auto-discover=maybe"), /expected true or false/);
});

Deno.test("run options: --dns-mode accepts tun_route, tun-route, tunroute in any case (docs/compatibility.md §1)", () => {
  for (const spelling of ["tun_route", "tun-route", "TunRoute", "TUN_ROUTE"]) {
    assertEquals(parseDnsMode(spelling), "tun_route");
  }
  assertEquals(parseDnsMode("Forward"), "forward");
  assertEquals(parseDnsMode("disabled"), "disabled");
  assertThrows(
    () => parseDnsMode("magic"),
    /not a DNS mode \(valid: tun_route, forward, disabled\)/,
  );
});

Deno.test("run options: -n is a comma list and repeatable", () => {
  const o = parse("-n", "a, b", "--namespaces", "c");
  assertEquals(o.namespaces, ["a", "b", "c"]);
  assertEquals(o.namespacesExplicit, true);
});

Deno.test("run options: numbers are range-checked with messages naming the flag", () => {
  assertEquals(parse("--mtu", "1400").mtu, 1400);
  assertThrows(() => parse("--mtu", "100"), /--mtu must be a whole number from 576 to 65535/);
  assertThrows(() => parse("--http", "70000"), /--http must be a whole number from 0 to 65535/);
  assertEquals(parse("--idle-timeout", "0").idleTimeoutSeconds, 0);
  assertThrows(() => parse("--idle-timeout", "-1"));
  assertEquals(parse("--max-connections", "200").maxConnections, 200);
  assertThrows(() => parse("--max-connections", "0"), /--max-connections must be a whole number/);
});

Deno.test("run options: --services takes svc.ns[:port] lists (docs/compatibility.md §1)", () => {
  assertEquals(parseServices("hello.demo,db.demo:5432"), [
    { name: "hello", namespace: "demo", port: undefined },
    { name: "db", namespace: "demo", port: 5432 },
  ]);
  assertThrows(() => parseServices("nonamespace"), /is not SERVICE.NAMESPACE\[:PORT\]/);
});

Deno.test("run options: listen addresses parse as HOST:PORT, :PORT or PORT", () => {
  assertEquals(parseListenAddress("1082", 1080), { hostname: "127.0.0.1", port: 1082 });
  assertEquals(parseListenAddress("[::1]:1083", 1080), { hostname: "::1", port: 1083 });
  assertEquals(parseListenAddress("0.0.0.0:99", 1080), { hostname: "0.0.0.0", port: 99 });
  assertThrows(() => parseListenAddress("host:port", 1080), /is not HOST:PORT/);
});
