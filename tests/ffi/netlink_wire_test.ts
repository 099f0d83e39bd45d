/** rtnetlink encoding against the bytes measured on a live kernel (docs/platform.md §3.2–§3.3). */
import { assertEquals } from "../assert.ts";
import {
  decodeAcks,
  encodeAttribute,
  encodeLinkUp,
  encodeNewAddress,
  encodeRoute,
  encodeSetMtu,
  encodeSetTxQueueLength,
  RouteProtocol,
  RouteScope,
} from "../../ffi/linux/netlink_wire.ts";

const hex = (text: string) => new Uint8Array(text.trim().split(/\s+/).map((b) => parseInt(b, 16)));

const ROUTE = { dst: 0xc6120000, prefix: 15, ifindex: 7 }; // 198.18.0.0/15 dev ifindex 7

Deno.test("netlink: RTM_NEWROUTE 198.18.0.0/15 dev 7 is byte for byte docs/platform.md §3.3", () => {
  assertEquals(
    [...encodeRoute("add", ROUTE, 1)],
    [...hex(`2c 00 00 00 18 00 05 06 01 00 00 00 00 00 00 00
             02 0f 00 00 fe 04 fd 01 00 00 00 00
             08 00 01 00 c6 12 00 00
             08 00 04 00 07 00 00 00`)],
  );
});

Deno.test("netlink: RTM_DELROUTE is type 0x19 with flags REQUEST|ACK (docs/platform.md §3.3)", () => {
  const add = encodeRoute("add", ROUTE, 9);
  const del = encodeRoute("delete", ROUTE, 9);
  assertEquals([...del.subarray(4, 8)], [0x19, 0x00, 0x05, 0x00]);
  assertEquals([...del.subarray(8)], [...add.subarray(8)]);
});

Deno.test("netlink: protocol and scope can be chosen (rtmsg bytes 5 and 6, docs/platform.md §3.2)", () => {
  const boot = encodeRoute(
    "add",
    { ...ROUTE, protocol: RouteProtocol.BOOT, scope: RouteScope.UNIVERSE },
    1,
  );
  assertEquals([...boot.subarray(16 + 4, 16 + 8)], [0xfe, 0x03, 0x00, 0x01]);
});

Deno.test("netlink: RTM_NEWADDR 198.18.0.1/15 on ifindex 2 is byte for byte docs/platform.md §3.3", () => {
  assertEquals(
    [...encodeNewAddress({ address: 0xc6120001, prefix: 15, ifindex: 2 }, 1)],
    [...hex(`28 00 00 00 14 00 05 06 01 00 00 00 00 00 00 00 02 0f 00 00 02 00 00 00
             08 00 02 00 c6 12 00 01 08 00 01 00 c6 12 00 01`)],
  );
});

Deno.test("netlink: RTM_NEWLINK link up on ifindex 2 is byte for byte docs/platform.md §3.3", () => {
  assertEquals(
    [...encodeLinkUp(2, 2)],
    [...hex(`20 00 00 00 10 00 05 00 02 00 00 00 00 00 00 00
             00 00 00 00 02 00 00 00 01 00 00 00 01 00 00 00`)],
  );
});

Deno.test("netlink: MTU is RTM_NEWLINK with flags/change 0 and IFLA_MTU (docs/platform.md §3.3)", () => {
  assertEquals(
    [...encodeSetMtu(2, 1500, 3)],
    [...hex(`28 00 00 00 10 00 05 00 03 00 00 00 00 00 00 00
             00 00 00 00 02 00 00 00 00 00 00 00 00 00 00 00
             08 00 04 00 dc 05 00 00`)],
  );
});

Deno.test("netlink: rtattr length is unpadded, the next one starts at RTA_ALIGN (docs/platform.md §3.2)", () => {
  const name = encodeAttribute(3, new TextEncoder().encode("tun0\0")); // IFLA_IFNAME
  assertEquals([...name], [0x09, 0x00, 0x03, 0x00, 0x74, 0x75, 0x6e, 0x30, 0x00, 0x00, 0x00, 0x00]);
  assertEquals(
    encodeAttribute(1, new Uint8Array(4)).length,
    8,
    "a 4-byte payload needs no padding",
  );
});

/** An NLMSG_ERROR ack as §5.4 measured it: header, i32 error, the echoed request (or its header). */
function ack(seq: number, error: number, echoed: Uint8Array, flags: number): Uint8Array {
  const out = new Uint8Array(16 + 4 + echoed.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, out.length, true);
  view.setUint16(4, 2, true);
  view.setUint16(6, flags, true);
  view.setUint32(8, seq, true);
  view.setInt32(16, error, true);
  out.set(echoed, 20);
  return out;
}

Deno.test("netlink: a success ack as bytes (len 36, CAPPED, error 0) decodes (docs/platform.md §3.5)", () => {
  const success = hex(`24 00 00 00 02 00 00 01 01 00 00 00 a1 0f 00 00
                       00 00 00 00
                       2c 00 00 00 18 00 05 06 01 00 00 00 00 00 00 00`);
  assertEquals(decodeAcks(success), [{ seq: 1, errno: 0 }]);
});

Deno.test("netlink: acks of docs/platform.md §3.5 in one buffer — success, EEXIST −17, ESRCH −3", () => {
  const request = encodeRoute("add", ROUTE, 1);
  const success = ack(1, 0, request.subarray(0, 16), 0x100);
  const exists = ack(2, -17, request, 0);
  const gone = ack(3, -3, encodeRoute("delete", ROUTE, 3), 0);
  assertEquals(success.length, 36);
  assertEquals(exists.length, 64);
  assertEquals(gone.length, 64);
  const together = new Uint8Array([...success, ...exists, ...gone]);
  assertEquals(decodeAcks(together), [
    { seq: 1, errno: 0 },
    { seq: 2, errno: 17 },
    { seq: 3, errno: 3 },
  ]);
  assertEquals(decodeAcks(together.subarray(0, 30)), [], "a truncated message is not an ack");
});

Deno.test("netlink: messages other than NLMSG_ERROR between acks are skipped (docs/platform.md §3.5)", () => {
  const done = hex("14 00 00 00 03 00 02 00 05 00 00 00 00 00 00 00 00 00 00 00"); // NLMSG_DONE
  const exists = ack(6, -17, encodeRoute("add", ROUTE, 6), 0);
  assertEquals(decodeAcks(new Uint8Array([...done, ...exists])), [{ seq: 6, errno: 17 }]);
});

Deno.test("netlink: the transmit queue length is RTM_NEWLINK with flags/change 0 and IFLA_TXQLEN (13)", () => {
  const bytes = encodeSetTxQueueLength(2, 1000, 9);
  assertEquals(bytes.length, 40);
  const view = new DataView(bytes.buffer);
  assertEquals([view.getUint32(0, true), view.getUint16(4, true), view.getUint32(8, true)], [
    40,
    16, // RTM_NEWLINK
    9,
  ]);
  assertEquals([view.getInt32(20, true), view.getUint32(24, true), view.getUint32(28, true)], [
    2,
    0,
    0,
  ]);
  assertEquals([view.getUint16(32, true), view.getUint16(34, true), view.getUint32(36, true)], [
    8,
    13,
    1000,
  ]);
});
