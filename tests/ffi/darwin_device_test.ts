/**
 * The macOS device behind the seam, byte for byte where a Linux machine can check it: the utun
 * framing of the packet loop's end (written into the headroom, read back without it), the
 * getifaddrs list read with BSD sockaddrs, the utun unit for a name, the delete message of a
 * route, and the declarations that make variadic calls right on x86_64 and on arm64. The rest
 * runs on macOS in CI (.github/workflows/ci.yml).
 */
import { assert, assertEquals, assertThrows } from "../assert.ts";
import { receiveUtun, utunFrame } from "../../ffi/darwin/packet_io.ts";
import { utunUnit } from "../../ffi/darwin/tun_device.ts";
import { LIBSYSTEM_SYMBOLS } from "../../ffi/darwin/libsystem.ts";
import { encodeRouteMessage } from "../../ffi/darwin/route_wire.ts";
import { ifaddrsIpv4 } from "../../ffi/linux/local_addresses.ts";
import { FRAME_HEADROOM } from "../../core/net/device/tun_device.ts";

Deno.test("darwin device: a written packet gets its address family in the headroom before it, without a copy", () => {
  const buffer = new Uint8Array(FRAME_HEADROOM + 24).fill(0xee);
  const packet = buffer.subarray(FRAME_HEADROOM, FRAME_HEADROOM + 20);
  packet[0] = 0x45;
  const frame = utunFrame(packet);
  assert(frame.buffer === buffer.buffer, "the same memory: one write, no copy");
  assertEquals(frame.byteOffset, FRAME_HEADROOM - 4);
  assertEquals(frame.length, 24);
  assertEquals([...frame.subarray(0, 5)], [0, 0, 0, 2, 0x45], "AF_INET in network order");
  packet[0] = 0x60;
  assertEquals([...utunFrame(packet).subarray(0, 4)], [0, 0, 0, 30], "AF_INET6 is 30 on macOS");
});

Deno.test("darwin device: reads hand over IPv4 packets without the 4-byte family, skip IPv6, and stop when none are left", () => {
  const frames = [
    [0, 0, 0, 2, 0x45, 1, 2, 3],
    [0, 0, 0, 30, 0x60, 9, 9, 9],
    [0, 0, 0, 2, 0x45, 4, 5],
  ];
  let next = 0;
  const read = (into: Uint8Array) => {
    const frame = frames[next++];
    if (!frame) return -1; // EAGAIN
    into.set(frame);
    return frame.length;
  };
  const taken: number[][] = [];
  const bytes = receiveUtun(read, new Uint8Array(64), 100, (packet, trusted) => {
    assertEquals(trusted, false, "utun vouches for no checksum");
    taken.push([...packet]);
  });
  assertEquals(taken, [[0x45, 1, 2, 3], [0x45, 4, 5]]);
  assertEquals(bytes, 8 + 8 + 7);
  next = 0;
  receiveUtun(read, new Uint8Array(64), 1, () => {});
  assertEquals(next, 1, "at most `max` reads");
});

/** A `struct ifaddrs` list in memory (64-bit layout) with one sockaddr each. */
function ifaddrsList(sockaddrs: Uint8Array[]): { head: Deno.PointerValue; keep: unknown[] } {
  const keep: unknown[] = [];
  let next = 0n;
  for (const sockaddr of [...sockaddrs].reverse()) {
    const entry = new BigUint64Array(8); // ifa_next, ifa_name, ifa_flags, ifa_addr, …
    entry[0] = next;
    entry[3] = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(sockaddr)));
    keep.push(entry, sockaddr);
    next = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(entry)));
  }
  return { head: Deno.UnsafePointer.create(next), keep };
}

Deno.test("darwin device: host addresses are read from getifaddrs with BSD sockaddrs (length byte, then family)", () => {
  const bsd = (family: number, a: number[]) =>
    new Uint8Array([16, family, 0, 0, ...a, ...new Array(8).fill(0)]);
  const { head, keep } = ifaddrsList([
    bsd(2, [192, 168, 1, 20]),
    bsd(30, [0xfe, 0x80, 0, 0]), // AF_INET6
    bsd(2, [127, 0, 0, 1]),
  ]);
  assertEquals(ifaddrsIpv4(head, "bsd"), [0x7f000001, 0xc0a80114]);
  assertEquals(ifaddrsIpv4(head, "linux"), [], "read as Linux sockaddrs, the family is wrong");
  assert(keep.length === 6);
});

Deno.test("darwin device: a name gives the utun unit to connect to; other names are refused with a way out", () => {
  assertEquals(utunUnit(""), 0, "the first free utun");
  assertEquals(utunUnit("utun0"), 1);
  assertEquals(utunUnit("utun7"), 8);
  assertThrows(
    () => utunUnit("tun0"),
    /utun0, utun1, …: "tun0" cannot be created — pass utunN or no name/,
  );
});

Deno.test("darwin device: the route a device deletes on close is its RTM_ADD with RTM_DELETE as type", () => {
  const route = { dst: 0xc6120000, prefix: 16, via: { address: 0xc6120001 } };
  const add = encodeRouteMessage("add", route, 1);
  const del = encodeRouteMessage("delete", route, 1);
  assertEquals(del[3], 2, "RTM_DELETE");
  assertEquals([...del.subarray(4)], [...add.subarray(4)]);
});

Deno.test("darwin device: variadic ioctl and fcntl pass their argument on the stack on arm64 (six pads), in a register on x86_64", () => {
  const pads = ["u64", "u64", "u64", "u64", "u64", "u64"];
  assertEquals([...LIBSYSTEM_SYMBOLS.ioctl.parameters], ["i32", "u64", "buffer"]);
  assertEquals([...LIBSYSTEM_SYMBOLS.ioctlArm64.parameters], ["i32", "u64", ...pads, "buffer"]);
  assertEquals(LIBSYSTEM_SYMBOLS.ioctlArm64.name, "ioctl");
  assertEquals([...LIBSYSTEM_SYMBOLS.fcntlArm64.parameters], ["i32", "i32", ...pads, "i64"]);
  assertEquals(LIBSYSTEM_SYMBOLS.fcntlArm64.name, "fcntl");
  // nfds_t is an unsigned int on macOS (an unsigned long on Linux).
  assertEquals([...LIBSYSTEM_SYMBOLS.poll.parameters], ["buffer", "u32", "i32"]);
});
