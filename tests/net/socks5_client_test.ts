/**
 * The SOCKS5 client's bytes (RFC 1928): the CONNECT request, and the replies parsed however the
 * network splits them, including hostile ones.
 */
import { assert, assertEquals, assertThrows } from "../assert.ts";
import { failureOfReply } from "../../core/proxy/socks5.ts";
import { loopDialOf } from "../../core/net/data_plane/loop_dial.ts";
import {
  socks5ConnectRequest,
  socks5NoAuthConnect,
  type Socks5Outcome,
  Socks5ReplyParser,
} from "../../core/net/wire/socks5_client.ts";

const METHOD_OK = [5, 0];
const CONNECT_OK_IPV4 = [5, 0, 0, 1, 10, 0, 0, 1, 0x1f, 0x90];

/** Feeds `bytes` split at the given offsets; the last outcome. */
function feed(bytes: number[], cuts: number[] = []): Socks5Outcome {
  const parser = new Socks5ReplyParser();
  let outcome: Socks5Outcome = { kind: "more" };
  let at = 0;
  for (const cut of [...cuts, bytes.length]) {
    outcome = parser.push(new Uint8Array(bytes.slice(at, cut)));
    at = cut;
    if (outcome.kind !== "more") break;
  }
  return outcome;
}

Deno.test("socks5 client: CONNECT requests for an IPv4 address and for a name (RFC 1928 §4, §5)", () => {
  assertEquals([...socks5ConnectRequest("10.0.0.7", 5432)], [5, 1, 0, 1, 10, 0, 0, 7, 0x15, 0x38]);
  assertEquals(
    [...socks5ConnectRequest("db", 80)],
    [5, 1, 0, 3, 2, 0x64, 0x62, 0, 80],
  );
  assertEquals([...socks5NoAuthConnect("db", 80)].slice(0, 3), [5, 1, 0], "greeting first");
  assertThrows(() => socks5ConnectRequest("x".repeat(256), 80), RangeError);
});

Deno.test("socks5 client: the replies connect however they are split, and what follows is the target's", () => {
  const bytes = [...METHOD_OK, ...CONNECT_OK_IPV4, 0x68, 0x69];
  // Split once anywhere: the replies end at byte 12; the chunk that completes them carries the
  // target's first bytes that came with it, and the parser reads no further.
  for (let cut = 0; cut <= bytes.length; cut++) {
    const outcome = feed(bytes, [cut]);
    const completing = cut >= 12 ? cut : bytes.length;
    assertEquals(
      outcome.kind === "connected" && [...outcome.rest],
      bytes.slice(12, completing),
      `split at ${cut}`,
    );
  }
  // Byte by byte.
  assertEquals(feed(bytes, [...bytes.keys()].slice(1)).kind, "connected");
  const whole = feed(bytes);
  assertEquals(whole.kind === "connected" && [...whole.rest], [0x68, 0x69]);
  // A name (type 3) and an IPv6 address (type 4) in the bound address are skipped by length.
  const name = feed([...METHOD_OK, 5, 0, 0, 3, 3, 0x61, 0x62, 0x63, 0, 80, 7]);
  assertEquals(name.kind === "connected" && [...name.rest], [7]);
  const v6 = feed([...METHOD_OK, 5, 0, 0, 4, ...new Array(16).fill(0), 0, 80]);
  assertEquals(v6.kind === "connected" && v6.rest.length, 0);
});

Deno.test("socks5 client: failure replies and broken proxies fail with a reason", () => {
  const refused = feed([...METHOD_OK, 5, 5, 0, 1, 0, 0, 0, 0, 0, 0]);
  assertEquals(refused.kind === "failed" && refused.reply, 5);
  assertEquals(failureOfReply(5), "refused");
  assertEquals(failureOfReply(2), "forbidden");
  assertEquals(failureOfReply(4), "unreachable");
  assertEquals(failureOfReply(6), "timeout");
  assertEquals(failureOfReply(1), "error");
  const noMethod = feed([5, 0xff]);
  assertEquals(noMethod.kind === "failed" && noMethod.reply, 0xff);
  assertEquals(failureOfReply(0xff), "forbidden");
  for (
    const broken of [
      [4, 0], // SOCKS4 answering
      [5, 2], // a method not offered
      [...METHOD_OK, 4, 0, 0, 1, 0, 0, 0, 0, 0, 0], // reply of another version
      [...METHOD_OK, 5, 0, 0, 9, 0, 0, 0, 0, 0, 0], // unknown address type
    ]
  ) {
    const outcome = feed(broken);
    assertEquals(outcome.kind === "failed" && outcome.reply, 1, `${broken}`);
  }
});

Deno.test("socks5 client: 20,000 random replies never throw and never read past their bound", () => {
  let seed = 0x5eed;
  const next = () => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0);
  for (let i = 0; i < 20_000; i++) {
    const parser = new Socks5ReplyParser();
    const length = next() % 300;
    const bytes = Uint8Array.from({ length }, () => next() & 0xff);
    if (i % 3 === 0 && length > 2) bytes.set([5, 0, 5, next() % 9], 0);
    let outcome: Socks5Outcome = { kind: "more" };
    for (let at = 0; at < length && outcome.kind === "more";) {
      const step = 1 + next() % 40;
      outcome = parser.push(bytes.subarray(at, at + step));
      at += step;
    }
    if (outcome.kind === "connected") assert(outcome.rest.length <= length);
  }
});

Deno.test("loop dial: a dialer's socket with an address or port the loop cannot open is refused as an error, not opened", () => {
  assertEquals(loopDialOf({ address: "10.0.0.7", port: 5432 }).address, 0x0a000007);
  for (const address of ["db.internal", "0.0.0.0", "10.0.0.256", "", "10.0.0"]) {
    assertThrows(() => loopDialOf({ address, port: 80 }), RangeError);
  }
  for (const port of [0, 65536, 1.5, -1]) {
    assertThrows(() => loopDialOf({ address: "10.0.0.7", port }), RangeError);
  }
  const socks = loopDialOf({
    address: "127.0.0.1",
    port: 1080,
    socks5Connect: { host: "db", port: 5432 },
  });
  assertEquals([...socks.socks5!], [...socks5NoAuthConnect("db", 5432)]);
});
