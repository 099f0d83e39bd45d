/** rtnetlink encoding against the bytes measured on a live kernel (platform-ffi.md §5.4, §5.6). */
import { assertEquals } from "../assert.ts";
import { decodeAcks, encodeRoute } from "../../ffi/linux/netlink_wire.ts";

const hex = (text: string) => new Uint8Array(text.trim().split(/\s+/).map((b) => parseInt(b, 16)));

const ROUTE = { dst: 0xc6120000, prefix: 15, ifindex: 7 }; // 198.18.0.0/15 dev ifindex 7

Deno.test("netlink: RTM_NEWROUTE 198.18.0.0/15 dev 7 is byte for byte §5.6's worked example", () => {
  assertEquals(
    [...encodeRoute("add", ROUTE, 1)],
    [...hex(`2c 00 00 00 18 00 05 06 01 00 00 00 00 00 00 00
             02 0f 00 00 fe 04 fd 01 00 00 00 00
             08 00 01 00 c6 12 00 00
             08 00 04 00 07 00 00 00`)],
  );
});

Deno.test("netlink: RTM_DELROUTE is the same message with type 0x19 and flags REQUEST|ACK (§5.6)", () => {
  const add = encodeRoute("add", ROUTE, 9);
  const del = encodeRoute("delete", ROUTE, 9);
  assertEquals([...del.subarray(4, 8)], [0x19, 0x00, 0x05, 0x00]);
  assertEquals([...del.subarray(8)], [...add.subarray(8)]);
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

Deno.test("netlink: acks of §5.4 decode — success (36 bytes, CAPPED), EEXIST and ESRCH (64 bytes)", () => {
  const request = encodeRoute("add", ROUTE, 1);
  const success = ack(1, 0, request.subarray(0, 16), 0x100);
  const exists = ack(2, -17, request, 0);
  const gone = ack(3, -3, encodeRoute("delete", ROUTE, 3), 0);
  assertEquals(success.length, 36);
  assertEquals(exists.length, 64);
  const together = new Uint8Array([...success, ...exists, ...gone]);
  assertEquals(decodeAcks(together), [
    { seq: 1, errno: 0 },
    { seq: 2, errno: 17 },
    { seq: 3, errno: 3 },
  ]);
  assertEquals(decodeAcks(together.subarray(0, 30)), [], "a truncated message is not an ack");
});
