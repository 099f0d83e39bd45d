/** The tunnel's WebSocket frame reader (RFC 6455 §5.2) and the opening handshake's checks (§4). */
import { assert, assertEquals, assertThrows } from "../assert.ts";
import {
  CLOSE_PROTOCOL_ERROR,
  CLOSE_TOO_BIG,
  CLOSE_UNSUPPORTED_DATA,
  WebSocketProtocolError,
  WebSocketReader,
} from "../../core/k8s/websocket_reader.ts";
import {
  webSocketAccept,
  webSocketKey,
  webSocketSwitchProblem,
} from "../../core/k8s/websocket_upgrade.ts";
import { concatBytes } from "../../core/stream/concat_bytes.ts";

const MAX = 1024 * 1024;

/** An unmasked server frame: FIN bit, opcode, 7/16/64-bit length as the payload needs. */
function serverFrame(opcode: number, payload: Uint8Array, fin = true): Uint8Array {
  const n = payload.length;
  const extended = n > 0xffff ? 8 : n > 125 ? 2 : 0;
  const frame = new Uint8Array(2 + extended + n);
  frame[0] = (fin ? 0x80 : 0) | opcode;
  if (extended === 0) frame[1] = n;
  else if (extended === 2) {
    frame[1] = 126;
    frame[2] = n >>> 8;
    frame[3] = n & 0xff;
  } else {
    frame[1] = 127;
    new DataView(frame.buffer, 2, 8).setBigUint64(0, BigInt(n));
  }
  frame.set(payload, 2 + extended);
  return frame;
}

function pattern(length: number, seed = 0): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (i * 31 + seed) & 0xff);
}

/** A reader recording what it hands on; binary pieces are copied (views are valid per call). */
function recorder(max = MAX) {
  const events: string[] = [];
  const pieces: Uint8Array[] = [];
  let frames = 0;
  const reader = new WebSocketReader({
    frame: () => frames++,
    binary: (bytes) => pieces.push(bytes.slice()),
    ping: (payload) => events.push(`ping ${new TextDecoder().decode(payload)}`),
    pong: (payload) => events.push(`pong ${new TextDecoder().decode(payload)}`),
    close: (code, reason) => events.push(`close ${code} ${reason}`),
  }, max);
  return {
    reader,
    events,
    get frames() {
      return frames;
    },
    get bytes() {
      return concatBytes(pieces);
    },
    pieces,
  };
}

Deno.test("websocket reader: binary messages with 7-, 16- and 64-bit lengths come out byte for byte however the stream is split, headers included", () => {
  const payloads = [
    pattern(0),
    pattern(125, 1),
    pattern(126, 2),
    pattern(65535, 3),
    pattern(70_000, 4),
  ];
  const stream = concatBytes(payloads.map((p) => serverFrame(0x2, p)));
  for (const step of [1, 3, 7, 11, 4096, stream.length]) {
    const r = recorder();
    for (let at = 0; at < stream.length; at += step) r.reader.push(stream.subarray(at, at + step));
    assertEquals(r.bytes, concatBytes(payloads), `split every ${step} bytes`);
    assertEquals(r.frames, payloads.length, "every frame is heard");
  }
});

Deno.test("websocket reader: a payload arriving whole is handed on as a view into the chunk, not a copy", () => {
  const chunk = serverFrame(0x2, pattern(32 * 1024));
  const views: Uint8Array[] = [];
  const reader = new WebSocketReader({
    frame: () => {},
    binary: (bytes) => views.push(bytes),
    ping: () => {},
    pong: () => {},
    close: () => {},
  }, MAX);
  reader.push(chunk);
  assertEquals(views.length, 1);
  assert(views[0].buffer === chunk.buffer, "the payload shares the chunk's buffer");
  assertEquals(views[0].byteOffset, 4);
});

Deno.test("websocket reader: a fragmented binary message is handed on piece by piece, with a ping between its fragments answered in order", () => {
  const r = recorder();
  r.reader.push(serverFrame(0x2, pattern(10, 1), false));
  r.reader.push(serverFrame(0x9, new TextEncoder().encode("hi")));
  r.reader.push(serverFrame(0x0, pattern(20, 2), false));
  r.reader.push(serverFrame(0x0, pattern(5, 3), true));
  r.reader.push(serverFrame(0xa, new TextEncoder().encode("yo")));
  assertEquals(r.pieces.length, 3, "no join: one piece per fragment");
  assertEquals(r.bytes, concatBytes([pattern(10, 1), pattern(20, 2), pattern(5, 3)]));
  assertEquals(r.events, ["ping hi", "pong yo"]);
  assertEquals(r.frames, 5);
  // The message ended: a continuation now has nothing to continue.
  assertThrows(() => r.reader.push(serverFrame(0x0, pattern(1))), WebSocketProtocolError);
});

Deno.test("websocket reader: a close frame gives its code and reason; an empty one gives none", () => {
  const r = recorder();
  const body = concatBytes([new Uint8Array([0x03, 0xe8]), new TextEncoder().encode("bye")]);
  r.reader.push(serverFrame(0x8, body));
  r.reader.push(serverFrame(0x8, new Uint8Array(0)));
  assertEquals(r.events, ["close 1000 bye", "close undefined "]);
});

Deno.test("websocket reader: frames a client must refuse fail with the status to close with, and the reader stays failed", () => {
  const masked = serverFrame(0x2, pattern(4));
  masked[1] |= 0x80;
  const cases: [string, Uint8Array, number][] = [
    ["a masked server frame", masked, CLOSE_PROTOCOL_ERROR],
    ["a text frame", serverFrame(0x1, new TextEncoder().encode("x")), CLOSE_UNSUPPORTED_DATA],
    ["reserved bits", Uint8Array.of(0xc2, 0), CLOSE_PROTOCOL_ERROR],
    ["an unknown opcode", Uint8Array.of(0x83, 0), CLOSE_PROTOCOL_ERROR],
    ["a fragmented ping", serverFrame(0x9, pattern(1), false), CLOSE_PROTOCOL_ERROR],
    ["a 126-byte ping", serverFrame(0x9, pattern(126)), CLOSE_PROTOCOL_ERROR],
    ["a one-byte close", serverFrame(0x8, pattern(1)), CLOSE_PROTOCOL_ERROR],
    ["a close with status 1005", serverFrame(0x8, Uint8Array.of(0x03, 0xed)), CLOSE_PROTOCOL_ERROR],
    ["a close with status 999", serverFrame(0x8, Uint8Array.of(0x03, 0xe7)), CLOSE_PROTOCOL_ERROR],
    [
      "a new message inside a fragmented one",
      concatBytes([serverFrame(0x2, pattern(1), false), serverFrame(0x2, pattern(1))]),
      CLOSE_PROTOCOL_ERROR,
    ],
  ];
  for (const [what, bytes, code] of cases) {
    const r = recorder();
    const error = (() => {
      try {
        r.reader.push(bytes);
      } catch (error) {
        return error;
      }
    })();
    assert(error instanceof WebSocketProtocolError, `${what} is refused`);
    assertEquals(error.code, code, what);
    assertThrows(() => r.reader.push(serverFrame(0x2, pattern(1))), WebSocketProtocolError);
  }
});

Deno.test("websocket reader: a header declaring more than the limit fails before any payload, for a frame and for a fragmented message's total", () => {
  const tooBig = (build: (r: ReturnType<typeof recorder>) => void) => {
    const r = recorder(1000);
    try {
      build(r);
    } catch (error) {
      assert(error instanceof WebSocketProtocolError);
      assertEquals(error.code, CLOSE_TOO_BIG);
      return r;
    }
    throw new Error("accepted");
  };
  // Only the header of a 2^40-byte frame: refused on its length alone.
  const huge = new Uint8Array(10);
  huge[0] = 0x82;
  huge[1] = 127;
  new DataView(huge.buffer, 2, 8).setBigUint64(0, 2n ** 40n);
  assertEquals(tooBig((r) => r.reader.push(huge)).pieces.length, 0);
  assertEquals(tooBig((r) => r.reader.push(serverFrame(0x2, pattern(1001)))).pieces.length, 0);
  const r = tooBig((r) => {
    r.reader.push(serverFrame(0x2, pattern(600), false));
    r.reader.push(serverFrame(0x0, pattern(600)));
  });
  assertEquals(r.pieces.length, 1, "the first fragment was handed on, the second refused");
});

Deno.test("websocket handshake: the accept value is RFC 6455's example, and a 101 is checked for it and for the subprotocol", () => {
  // RFC 6455 §1.3.
  assertEquals(webSocketAccept("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  const key = webSocketKey();
  assertEquals(atob(key).length, 16);
  assert(key !== webSocketKey(), "a fresh key per request");
  const protocol = "SPDY/3.1+portforward.k8s.io";
  const good = {
    upgrade: "websocket",
    "sec-websocket-accept": webSocketAccept(key),
    "sec-websocket-protocol": protocol,
  };
  assertEquals(webSocketSwitchProblem(good, key, protocol), undefined);
  assertEquals(webSocketSwitchProblem({ ...good, upgrade: "WebSocket" }, key, protocol), undefined);
  const problem = (headers: Record<string, string | undefined>) =>
    Object.keys(webSocketSwitchProblem(headers, key, protocol) ?? {})[0];
  assertEquals(problem({ ...good, "sec-websocket-accept": webSocketAccept("other") }), "broken");
  assertEquals(problem({ ...good, "sec-websocket-accept": undefined }), "broken");
  assertEquals(problem({ ...good, "sec-websocket-protocol": undefined }), "refused");
  assertEquals(problem({ ...good, "sec-websocket-protocol": "v4.channel.k8s.io" }), "refused");
  assertEquals(problem({ ...good, upgrade: "SPDY/3.1" }), "refused");
});
