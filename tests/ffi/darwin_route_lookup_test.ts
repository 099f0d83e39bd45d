/**
 * The macOS route lookup tun_route asks once at start-up (RTM_GET on a PF_ROUTE socket), byte
 * for byte where a Linux machine can check it: the request `route -n get` sends, the kernel's
 * reply read past other messages on the socket, and replies that are wrong in any way refused
 * with a clear error. The call itself runs on macOS in CI.
 */
import { assertEquals, assertThrows } from "../assert.ts";
import {
  decodeRouteGetReply,
  encodeRouteGet,
  encodeRouteMessage,
} from "../../ffi/darwin/route_wire.ts";
import { MAX_ROUTE_MESSAGES, readRouteGetReply } from "../../ffi/darwin/route_lookup.ts";
import { encodeSockaddrIn } from "../../ffi/darwin/utun_wire.ts";

const hex = (text: string) => new Uint8Array(text.trim().split(/\s+/).map((b) => parseInt(b, 16)));
const PID = 4321;
const SEQ = 1;

/** `sockaddr_dl` for en0 (index 6, Ethernet) as the kernel reports an interface: 20 bytes. */
const EN0 = hex("14 12 06 00 06 03 06 00 65 6e 30 aa bb cc dd ee ff 00 00 00");

/**
 * The reply xnu writes for `route -n get 192.168.1.1` on a LAN: DST, GATEWAY (a link address),
 * NETMASK (sa_len 0: four bytes), IFP (en0), IFA (the host's address) — rtm_addrs 0x37.
 */
function lanReply(overrides: { errno?: number; pid?: number; seq?: number } = {}): Uint8Array {
  const addresses = [
    encodeSockaddrIn(0xc0a80101),
    EN0,
    new Uint8Array(4),
    EN0,
    encodeSockaddrIn(0xc0a80117),
  ];
  const length = 92 + addresses.reduce((sum, a) => sum + a.length, 0);
  const out = new Uint8Array(length);
  const view = new DataView(out.buffer);
  view.setUint16(0, length, true);
  out[2] = 5;
  out[3] = 4; // RTM_GET
  view.setUint16(4, 6, true); // rtm_index
  view.setInt32(8, 0x405, true); // RTF_UP | RTF_HOST | RTF_LLINFO
  view.setInt32(12, 0x37, true);
  view.setInt32(16, overrides.pid ?? PID, true);
  view.setInt32(20, overrides.seq ?? SEQ, true);
  view.setInt32(24, overrides.errno ?? 0, true);
  let at = 92;
  for (const a of addresses) {
    out.set(a, at);
    at += a.length;
  }
  return out;
}

Deno.test("darwin route lookup: RTM_GET for 192.168.1.1 is route -n get's 128 bytes (DST and an empty IFP)", () => {
  const expected = new Uint8Array(128);
  expected.set(hex("80 00 05 04 00 00 00 00 05 00 00 00 11 00 00 00"), 0);
  expected.set(hex("e1 10 00 00 01 00 00 00"), 16); // pid 4321, seq 1
  expected.set(hex("10 02 00 00 c0 a8 01 01 00 00 00 00 00 00 00 00"), 92);
  expected.set(hex("14 12 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00"), 108);
  assertEquals([...encodeRouteGet(0xc0a80101, SEQ, PID)], [...expected]);
});

Deno.test("darwin route lookup: the reply names the interface (en0, index 6) past a four-byte empty netmask", () => {
  assertEquals(decodeRouteGetReply(lanReply(), SEQ, PID), { name: "en0", ifindex: 6 });
});

Deno.test("darwin route lookup: other processes' messages on the routing socket are read past, at most a bounded number", () => {
  const others = [
    encodeRouteMessage("add", { dst: 0x0a000000, prefix: 8, via: { ifindex: 3 } }, SEQ),
    lanReply({ pid: PID + 1 }),
    lanReply({ seq: SEQ + 1 }),
  ];
  const queue = [...others, lanReply()];
  let reads = 0;
  const fromQueue = (into: Uint8Array) => {
    reads++;
    const next = queue.shift();
    if (!next) return -1; // EAGAIN
    into.set(next);
    return next.length;
  };
  assertEquals(readRouteGetReply(fromQueue, SEQ, PID), { name: "en0", ifindex: 6 });
  assertEquals(reads, 4);

  queue.push(...others);
  assertEquals(readRouteGetReply(fromQueue, SEQ, PID), undefined, "no reply: none waiting");

  reads = 0;
  const endless = (into: Uint8Array) => {
    reads++;
    into.set(others[0]);
    return others[0].length;
  };
  assertEquals(readRouteGetReply(endless, SEQ, PID), undefined, "a flood of route changes");
  assertEquals(reads, MAX_ROUTE_MESSAGES);
});

Deno.test("darwin route lookup: a reply with an error, a wrong length, an overrun or no interface is refused with a reason", () => {
  assertThrows(() => decodeRouteGetReply(lanReply({ errno: 3 }), SEQ, PID), Error, "errno 3");
  const long = lanReply();
  new DataView(long.buffer).setUint16(0, long.length + 1, true);
  assertThrows(() => decodeRouteGetReply(long, SEQ, PID), Error, "arrived");
  const overrun = lanReply();
  overrun[92] = 200; // DST's sa_len runs past the message
  assertThrows(() => decodeRouteGetReply(overrun, SEQ, PID), Error, "overruns");
  const noIfp = lanReply();
  new DataView(noIfp.buffer).setInt32(12, 0x07, true);
  assertThrows(() => decodeRouteGetReply(noIfp, SEQ, PID), Error, "names no interface");
  const notLink = lanReply();
  notLink[92 + 16 + 20 + 4 + 1] = 2; // IFP's family: AF_INET
  assertThrows(() => decodeRouteGetReply(notLink, SEQ, PID), Error, "not a link address");
  const noName = lanReply();
  noName[92 + 16 + 20 + 4 + 5] = 0;
  assertThrows(() => decodeRouteGetReply(noName, SEQ, PID), Error, "no name");
  const longName = lanReply();
  longName[92 + 16 + 20 + 4 + 5] = 13; // past the 20-byte sockaddr_dl
  assertThrows(() => decodeRouteGetReply(longName, SEQ, PID), Error, "no name");
  assertEquals(decodeRouteGetReply(lanReply().subarray(0, 91), SEQ, PID), undefined, "a stub");
});
