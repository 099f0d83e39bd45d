/**
 * Run inside a lab namespace by rtnetlink_test.ts: opens a TUN, adds 10.96.0.0/12 through it over
 * rtnetlink, adds it again, deletes it twice, and prints one JSON line of what it saw.
 */
import { openLibc } from "../../ffi/linux/libc.ts";
import { configureTun, openTun, TunError } from "../../ffi/linux/tun.ts";
import { interfaceIndex, RouteTable } from "../../ffi/linux/rtnetlink.ts";

const routes = async () =>
  new TextDecoder().decode(
    (await new Deno.Command("ip", { args: ["-4", "route"], stdout: "piped" }).output()).stdout,
  );
const { symbols: libc } = openLibc();
const tun = openTun(libc, "");
configureTun(libc, tun.name, 0xc6120001, 32, 1500);
const table = RouteTable.open(libc);
const route = { dst: 0x0a600000, prefix: 12, ifindex: interfaceIndex(tun.name) };
table.add(route);
const added = await routes();
let duplicate = "";
try {
  table.add(route);
} catch (error) {
  duplicate = error instanceof TunError ? error.message : `not a TunError: ${error}`;
}
table.delete(route);
const deleted = await routes();
let deletedTwice = "ok";
try {
  table.delete(route);
} catch (error) {
  deletedTwice = String(error);
}
console.log(JSON.stringify({ tun: tun.name, added, duplicate, deleted, deletedTwice }));
