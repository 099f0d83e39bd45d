/** Choosing a VIP range no other route covers (another VPN, a fake-IP proxy). */
import { assertEquals, assertThrows } from "../assert.ts";
import { chooseVipRange, overlaps, type RoutedRange } from "../../core/vip_range.ts";
import { parseIpv4Address } from "../../core/net/wire/ipv4.ts";

const route = (cidr: string, owner: string): RoutedRange => {
  const [address, prefix] = cidr.split("/");
  return { dst: parseIpv4Address(address), prefix: Number(prefix), owner };
};
const chosen = (explicit: string | undefined, routes: RoutedRange[]) => {
  const choice = chooseVipRange(explicit, routes);
  const b = choice.network.base;
  return `${b >>> 24}.${(b >>> 16) & 255}.${(b >>> 8) & 255}.${b & 255}/${choice.network.prefix}`;
};

Deno.test("vip range: overlapping networks are those where one contains the other", () => {
  const r = (cidr: string) => route(cidr, "x");
  assertEquals(overlaps(r("198.18.0.0/15"), r("198.19.4.0/24")), true);
  assertEquals(overlaps(r("198.18.0.0/16"), r("198.19.0.0/16")), false);
  assertEquals(overlaps(r("0.0.0.0/0"), r("198.19.0.0/16")), true);
});

Deno.test("vip range: the default range when nothing specific covers it; default and VPN half-routes ignored", () => {
  const routes = [
    route("0.0.0.0/0", "eth0"),
    route("0.0.0.0/1", "tun0"),
    route("128.0.0.0/1", "tun0"),
    route("192.168.1.0/24", "eth0"),
  ];
  assertEquals(chosen(undefined, routes), "198.18.0.0/15");
});

Deno.test("vip range: a fake-IP proxy on 198.18.0.0/16 moves k8stun to the next free /16, naming the owner", () => {
  const choice = chooseVipRange(undefined, [route("198.18.0.0/16", "clash0")]);
  assertEquals(choice.skipped, [
    { cidr: "198.18.0.0/15", owner: "clash0" },
    { cidr: "198.18.0.0/16", owner: "clash0" },
  ]);
  assertEquals(chosen(undefined, [route("198.18.0.0/16", "clash0")]), "198.19.0.0/16");
  assertEquals(
    chosen(undefined, [route("198.18.0.0/15", "k8stun0"), route("198.18.0.1/32", "k8stun0")]),
    "100.127.0.0/16",
    "a second k8stun never shares the first one's range",
  );
});

Deno.test("vip range: an explicit --vip-base that is taken is an error naming the interface", () => {
  assertThrows(
    () => chooseVipRange("198.18.0.0/15", [route("198.19.0.0/24", "wg0")]),
    /--vip-base 198\.18\.0\.0\/15 overlaps 198\.19\.0\.0\/24, which is routed to wg0; choose a free range \(e\.g\. --vip-base 198\.18\.0\.0\/16\)/,
  );
  assertEquals(chosen("10.99.0.0/16", [route("198.19.0.0/24", "wg0")]), "10.99.0.0/16");
});

Deno.test("vip range: when every candidate is taken the error lists them", () => {
  assertThrows(
    () =>
      chooseVipRange(undefined, [
        route("10.0.0.0/8", "a"),
        route("100.0.0.0/8", "b"),
        route("172.16.0.0/12", "c"),
        route("198.0.0.0/8", "d"),
      ]),
    /every VIP range k8stun tries is already routed .*choose one with --vip-base/,
  );
});
