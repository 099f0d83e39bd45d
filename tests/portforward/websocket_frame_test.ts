import { assert, assertEquals, assertNotEquals } from "../assert.ts";
import { MaskedFrameEncoder } from "../../core/k8s/websocket_frame.ts";

/** Reads a client frame as a server does (RFC 6455 §5.2): FIN/opcode, mask bit, length, key. */
function decode(frame: Uint8Array): { opcode: number; key: Uint8Array; payload: Uint8Array } {
  assertEquals(frame[0], 0x82, "FIN and the binary opcode");
  assert(frame[1] & 0x80, "a client frame is masked (RFC 6455 §5.3)");
  let length = frame[1] & 0x7f;
  let offset = 2;
  if (length === 126) {
    length = (frame[2] << 8) | frame[3];
    offset = 4;
  } else if (length === 127) {
    length = Number(new DataView(frame.buffer, frame.byteOffset + 2, 8).getBigUint64(0));
    offset = 10;
  }
  const key = frame.slice(offset, offset + 4);
  assertEquals(frame.length, offset + 4 + length, "the frame is exactly its header and payload");
  const payload = frame.slice(offset + 4).map((byte, i) => byte ^ key[i & 3]);
  return { opcode: frame[0] & 0x0f, key, payload };
}

Deno.test("websocket frame: masked binary messages of every length encoding unmask to the head and body", () => {
  const encoder = new MaskedFrameEncoder();
  const head = new Uint8Array([0, 0, 0, 3, 1, 0, 0, 9]);
  for (const size of [0, 1, 3, 5, 117, 118, 119, 120, 121, 65527, 65528, 65529, 70_001]) {
    const body = new Uint8Array(size).map((_, i) => (i * 7 + 3) & 0xff);
    const frame = encoder.encode(head, body);
    const { payload } = decode(frame);
    const expected = new Uint8Array(head.length + size);
    expected.set(head);
    expected.set(body, head.length);
    assertEquals(payload, expected, `payload of ${size} + 8 bytes`);
  }
});

Deno.test("websocket frame: each message gets its own masking key, and the caller's bytes are not changed", () => {
  const encoder = new MaskedFrameEncoder();
  const body = new Uint8Array(64).fill(0x5a);
  const keys = new Set<string>();
  for (let i = 0; i < 2100; i++) {
    const { key } = decode(encoder.encode(new Uint8Array(0), body));
    keys.add(key.join(","));
  }
  // 2,100 keys (past a refill of the key pool) drawn at random: a repeat is all but impossible.
  assertEquals(keys.size, 2100);
  assertEquals(body, new Uint8Array(64).fill(0x5a));
  const a = encoder.encode(new Uint8Array(0), body);
  const b = encoder.encode(new Uint8Array(0), body);
  assertNotEquals(a.slice(2), b.slice(2), "the same bytes look different on the wire");
});
