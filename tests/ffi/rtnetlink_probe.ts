/**
 * Run inside a lab namespace by rtnetlink_test.ts: opens a TUN, adds 10.96.0.0/12 through it over
 * rtnetlink, adds it again, deletes it twice; then configures a second, bare TUN with the
 * RTM_NEWADDR / RTM_NEWLINK encoders alone (§5.3) and prints one JSON line of what it saw.
 */
import { openLibc } from "../../ffi/linux/libc.ts";
import { openTun, TunError } from "../../ffi/linux/tun.ts";
import { interfaceIndex, RouteTable } from "../../ffi/linux/rtnetlink.ts";
import { encodeLinkUp, encodeNewAddress, encodeSetMtu } from "../../ffi/linux/netlink_wire.ts";

const ip = async (...args: string[]) =>
  new TextDecoder().decode(
    (await new Deno.Command("ip", { args, stdout: "piped" }).output()).stdout,
  );
const { symbols: libc } = openLibc();
const tun = openTun(libc, "");
const table = RouteTable.open(libc);
table.configureLink(interfaceIndex(tun.name, libc), 0xc6120001, 1500, 1000);
const linked = await ip("link", "show", "dev", tun.name);
const route = { dst: 0x0a600000, prefix: 12, ifindex: interfaceIndex(tun.name, libc) };
table.add(route);
const added = await ip("-4", "route");
let duplicate = "";
try {
  table.add(route);
} catch (error) {
  duplicate = error instanceof TunError ? error.message : `not a TunError: ${error}`;
}
table.delete(route);
const deleted = await ip("-4", "route");
let deletedTwice = "ok";
try {
  table.delete(route);
} catch (error) {
  deletedTwice = String(error);
}

const bare = openTun(libc, "");
const index = interfaceIndex(bare.name, libc);
const errnos = [
  table.request((seq) => encodeSetMtu(index, 1400, seq)),
  table.request((seq) =>
    encodeNewAddress({ address: 0xc6120002, prefix: 32, ifindex: index }, seq)
  ),
  table.request((seq) => encodeLinkUp(index, seq)),
  table.request((seq) =>
    encodeNewAddress({ address: 0xc6120002, prefix: 32, ifindex: index }, seq)
  ),
];
const configured = await ip("-4", "addr", "show", "dev", bare.name);
table.close();
console.log(
  JSON.stringify({
    tun: tun.name,
    linked,
    added,
    duplicate,
    deleted,
    deletedTwice,
    errnos,
    configured,
  }),
);
