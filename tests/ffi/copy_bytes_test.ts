/** copyBytes (ffi/linux/libc.ts): memcpy for shared-memory views, bounds checked like `set`. */
import { assertEquals, assertThrows } from "../assert.ts";
import { copyBytes, openLibc } from "../../ffi/linux/libc.ts";

Deno.test({
  name: "copyBytes: odd offsets into and out of shared memory, byte-exact; overflows throw",
  ignore: Deno.build.os !== "linux", // glibc by name (libc.so.6)
}, () => {
  const lib = openLibc();
  try {
    const copy = copyBytes(lib.symbols);
    const shared = new Uint8Array(new SharedArrayBuffer(200_000));
    const source = new Uint8Array(150_001).map((_, i) => (i * 13 + 5) & 0xff);
    copy(shared.subarray(3), source.subarray(7)); // big: through memcpy
    assertEquals(shared.subarray(3, 3 + 149_994), source.subarray(7));
    assertEquals([shared[2], shared[3 + 149_994]], [0, 0]); // nothing outside the range
    const back = new Uint8Array(149_994);
    copy(back, shared.subarray(3, 3 + 149_994));
    assertEquals(back, source.subarray(7));
    copy(back.subarray(1), source.subarray(0, 100)); // small: through set
    assertEquals(back.subarray(1, 101), source.subarray(0, 100));
    assertThrows(() => copy(shared.subarray(0, 1000), source), RangeError);
    assertThrows(() => copy(shared.subarray(0, 10), source.subarray(0, 11)), RangeError);
  } finally {
    lib.close();
  }
});
