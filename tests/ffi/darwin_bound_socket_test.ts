/**
 * The macOS upstream sockets of tun_route DNS, byte for byte where a Linux machine can check
 * them: IP_BOUND_IF's arguments, the receive and send limits, and the declarations of the calls
 * (fixed, not variadic: the same on arm64 and x86_64). The calls run on macOS in CI.
 */
import { assertEquals, assertThrows } from "../assert.ts";
import {
  boundInterfaceOption,
  encodeTimeval,
  streamOptions,
} from "../../ffi/darwin/bound_socket.ts";
import { LIBSYSTEM_SYMBOLS } from "../../ffi/darwin/libsystem.ts";

Deno.test("darwin bound socket: IP_BOUND_IF is setsockopt(IPPROTO_IP 0, 25, the ifindex as a 4-byte little-endian int)", () => {
  const option = boundInterfaceOption(6);
  assertEquals([option.level, option.name, [...option.value]], [0, 25, [6, 0, 0, 0]]);
  assertEquals([...boundInterfaceOption(0x1234).value], [0x34, 0x12, 0, 0]);
  for (const bad of [0, -1, 0x10000, 1.5, NaN]) {
    assertThrows(() => boundInterfaceOption(bad), RangeError, "not an interface index");
  }
});

Deno.test("darwin bound socket: a TCP socket is bound first, then gets SO_RCVTIMEO and SO_SNDTIMEO as a 16-byte timeval", () => {
  const timeval = [1, 0, 0, 0, 0, 0, 0, 0, 0x20, 0xa1, 0x07, 0, 0, 0, 0, 0]; // 1 s, 500000 µs
  assertEquals([...encodeTimeval(1500)], timeval);
  assertEquals(
    streamOptions(4, 1500).map((o) => [o.level, o.name, [...o.value]]),
    [[0, 25, [4, 0, 0, 0]], [0xffff, 0x1006, timeval], [0xffff, 0x1005, timeval]],
  );
});

Deno.test("darwin bound socket: setsockopt, send, recv and poll are declared with fixed arguments for both CPUs", () => {
  assertEquals(LIBSYSTEM_SYMBOLS.setsockopt.parameters, ["i32", "i32", "i32", "buffer", "u32"]);
  assertEquals(LIBSYSTEM_SYMBOLS.send.parameters, ["i32", "buffer", "usize", "i32"]);
  assertEquals(LIBSYSTEM_SYMBOLS.recvBlocking.parameters, ["i32", "buffer", "usize", "i32"]);
  assertEquals(LIBSYSTEM_SYMBOLS.recvBlocking.nonblocking, true, "waits off the main thread");
  assertEquals(
    LIBSYSTEM_SYMBOLS.pollBlocking.parameters,
    ["buffer", "u32", "i32"],
    "nfds_t: 32 bits",
  );
  assertEquals(LIBSYSTEM_SYMBOLS.getpid.result, "i32");
});
