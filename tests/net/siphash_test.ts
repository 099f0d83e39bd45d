/**
 * SipHash-2-4 against the reference test vectors (key 00 01 … 0f, message 00 01 … n−1; output
 * bytes as the reference's vectors.h lists them, little-endian).
 */
import { assertEquals, assertThrows } from "../assert.ts";
import { SipHash24 } from "../../core/net/tcp/siphash.ts";

const KEY = Uint8Array.from({ length: 16 }, (_, i) => i);

const VECTORS: [number, string][] = [
  [0, "310e0edd47db6f72"],
  [1, "fd67dc93c539f874"],
  [7, "37d1018bf50002ab"],
  [8, "6224939a79f5f593"],
  [9, "b0e4a90bdf82009e"],
  [15, "e545be4961ca29a1"],
  [16, "db9bc2577fcc2a3f"],
  [63, "724506eb4c328a95"],
];

/** The hash as the reference prints it: 8 bytes, least significant first. */
function hex([lo, hi]: [number, number]): string {
  const bytes = new Uint8Array(8);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, lo, true);
  view.setUint32(4, hi, true);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test("siphash: SipHash-2-4 matches the reference vectors for messages of 0 to 63 bytes", () => {
  const sip = new SipHash24(KEY);
  for (const [length, expected] of VECTORS) {
    const message = Uint8Array.from({ length }, (_, i) => i);
    assertEquals(hex(sip.hash(message)), expected, `message of ${length} bytes`);
  }
});

Deno.test("siphash: a key that is not 16 bytes is refused", () => {
  assertThrows(() => new SipHash24(new Uint8Array(8)), RangeError);
});
