import { assert, assertEquals, assertNotEquals } from "../assert.ts";
import { MaskedFrameEncoder, maskedFrameLength } from "../../core/k8s/websocket_frame.ts";
import { CoalescingWriter } from "../../core/k8s/coalescing_writer.ts";

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

/** Splits a run of client frames into their unmasked payloads. */
function payloads(bytes: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let offset = 0; offset < bytes.length;) {
    const length7 = bytes[offset + 1] & 0x7f;
    const length = length7 === 126
      ? (bytes[offset + 2] << 8) | bytes[offset + 3]
      : length7 === 127
      ? Number(new DataView(bytes.buffer, bytes.byteOffset + offset + 2, 8).getBigUint64(0))
      : length7;
    const size = maskedFrameLength(length);
    out.push(decode(bytes.subarray(offset, offset + size)).payload);
    offset += size;
  }
  return out;
}

Deno.test("websocket frame: messages sent while a write is out go together in the next write, in order, each masked on its own at any alignment", () => {
  const writes: Uint8Array[] = [];
  const pending: (() => void)[] = [];
  const writer = new CoalescingWriter(new MaskedFrameEncoder(), (bytes, done) => {
    writes.push(bytes.slice());
    pending.push(done);
  });
  const messages = [1, 2, 3, 5, 126, 70_001, 7, 40_000].map((size, n) =>
    new Uint8Array(size).map((_, i) => (i * 13 + n) & 0xff)
  );
  const head = new Uint8Array([9, 8, 7]);
  writer.send(head, messages[0]);
  for (const body of messages.slice(1)) writer.send(head, body);
  assertEquals(writes.length, 1, "the first message went at once, the rest wait for it");
  assert(writer.queuedBytes > 0, "the waiting messages are not counted as queued");
  while (pending.length > 0) pending.shift()!();
  assertEquals(writer.queuedBytes, 0);
  const joined = new Uint8Array(writes.reduce((sum, w) => sum + w.length, 0));
  let offset = 0;
  for (const write of writes) {
    joined.set(write, offset);
    offset += write.length;
  }
  const expected = messages.map((body) => {
    const payload = new Uint8Array(head.length + body.length);
    payload.set(head);
    payload.set(body, head.length);
    return payload;
  });
  assertEquals(payloads(joined), expected);
  assert(writes.length < messages.length, "the waiting messages were written one by one");
});
