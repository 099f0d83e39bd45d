/** macOS utun and PF_ROUTE encodings against docs/platform.md §4 (tested here, run on a Mac). */
import { assertEquals } from "../assert.ts";
import {
  CTLIOCGINFO,
  SIOCAIFADDR,
  SIOCDIFADDR,
  SIOCGIFFLAGS,
  SIOCGIFMTU,
  SIOCSIFFLAGS,
  SIOCSIFMTU,
} from "../../ffi/darwin/ioctl.ts";
import { encodeRouteMessage } from "../../ffi/darwin/route_wire.ts";
import {
  decodeCtlId,
  encodeCtlInfo,
  encodeIfreqMtu,
  encodeInAliasReq,
  encodeSockaddrCtl,
  encodeSockaddrIn,
  frameUtunPacket,
  unframeUtunPacket,
} from "../../ffi/darwin/utun_wire.ts";

const hex = (text: string) => new Uint8Array(text.trim().split(/\s+/).map((b) => parseInt(b, 16)));

Deno.test("darwin: ioctl numbers computed from _IOW/_IOWR match §6.1–§6.2", () => {
  assertEquals(CTLIOCGINFO, 0xc0644e03);
  assertEquals(SIOCAIFADDR, 0x8040691a);
  assertEquals(SIOCDIFADDR, 0x80206919);
  assertEquals(SIOCSIFMTU, 0x80206934);
  assertEquals(SIOCGIFMTU, 0xc0206933);
  assertEquals(SIOCSIFFLAGS, 0x80206910);
  assertEquals(SIOCGIFFLAGS, 0xc0206911);
});

Deno.test("darwin: RTM_ADD 198.18.0.0/15 via 198.18.0.1 is §6.3's 140-byte worked example", () => {
  const message = encodeRouteMessage("add", {
    dst: 0xc6120000,
    prefix: 15,
    via: { address: 0xc6120001 },
  }, 1);
  const expected = new Uint8Array(140);
  expected.set(hex("8c 00 05 01 00 00 00 00 03 08 00 00 07 00 00 00"), 0);
  expected.set(hex("00 00 00 00 01 00 00 00"), 16);
  expected.set(hex("10 02 00 00 c6 12 00 00 00 00 00 00 00 00 00 00"), 92);
  expected.set(hex("10 02 00 00 c6 12 00 01 00 00 00 00 00 00 00 00"), 108);
  expected.set(hex("10 02 00 00 ff fe 00 00 00 00 00 00 00 00 00 00"), 124);
  assertEquals([...message], [...expected]);
});

Deno.test("darwin: an interface route carries a sockaddr_dl gateway and no RTF_GATEWAY", () => {
  const message = encodeRouteMessage("delete", {
    dst: 0xc6120000,
    prefix: 15,
    via: { ifindex: 9 },
  }, 2);
  assertEquals(message.length, 92 + 16 + 20 + 16);
  assertEquals(message[3], 0x2, "RTM_DELETE");
  assertEquals([...message.subarray(8, 12)], [0x01, 0x08, 0, 0], "RTF_UP|RTF_STATIC");
  assertEquals([...message.subarray(108, 112)], [20, 18, 9, 0], "sockaddr_dl len, AF_LINK, index");
});

Deno.test("darwin: ctl_info, sockaddr_ctl, in_aliasreq and ifreq have §6's sizes and offsets", () => {
  const info = encodeCtlInfo();
  assertEquals(info.length, 100);
  assertEquals(new TextDecoder().decode(info.subarray(4, 30)), "com.apple.net.utun_control");
  info.set([7, 0, 0, 0]);
  assertEquals(decodeCtlId(info), 7);
  assertEquals(
    [...encodeSockaddrCtl(7, 4)],
    [32, 32, 2, 0, 7, 0, 0, 0, 4, 0, 0, 0, ...new Array(20).fill(0)],
  );
  const alias = encodeInAliasReq("utun3", 0xc6120001, 0xfffe0000);
  assertEquals(alias.length, 64);
  assertEquals(new TextDecoder().decode(alias.subarray(0, 5)), "utun3");
  assertEquals([...alias.subarray(16, 24)], [16, 2, 0, 0, 0xc6, 0x12, 0, 1], "ifra_addr");
  assertEquals([...alias.subarray(32, 40)], [16, 2, 0, 0, 0xc6, 0x12, 0, 1], "ifra_broadaddr");
  assertEquals([...alias.subarray(48, 56)], [16, 2, 0, 0, 0xff, 0xfe, 0, 0], "ifra_mask");
  const mtu = encodeIfreqMtu("utun3", 1500);
  assertEquals(mtu.length, 32);
  assertEquals([...mtu.subarray(16, 20)], [0xdc, 0x05, 0, 0]);
});

Deno.test("darwin: utun packets carry the address family first; IPv6 reads are ignored", () => {
  const ipv4 = new Uint8Array([0x45, 0, 0, 20]);
  assertEquals([...frameUtunPacket(ipv4).subarray(0, 4)], [0, 0, 0, 2]);
  assertEquals([...frameUtunPacket(new Uint8Array([0x60, 0])).subarray(0, 4)], [0, 0, 0, 0x1e]);
  assertEquals([...unframeUtunPacket(frameUtunPacket(ipv4))!], [...ipv4]);
  assertEquals(unframeUtunPacket(new Uint8Array([0, 0, 0, 0x1e, 0x60])), null);
});

Deno.test("darwin: BSD sockaddr_in starts with its length 16, then family, port and address (§6.2)", () => {
  assertEquals(
    [...encodeSockaddrIn(0xc6120035, 53)],
    [16, 2, 0, 53, 0xc6, 0x12, 0, 0x35, 0, 0, 0, 0, 0, 0, 0, 0],
  );
});

Deno.test("darwin: rt_msghdr fields sit at §6.3's offsets (version @2, addrs @12, seq @20, zeros to byte 91)", () => {
  const message = encodeRouteMessage(
    "add",
    { dst: 0x0a600000, prefix: 12, via: { ifindex: 4 } },
    0x1234,
  );
  const view = new DataView(message.buffer);
  assertEquals(view.getUint16(0, true), message.length);
  assertEquals(message[2], 5, "RTM_VERSION");
  assertEquals(view.getInt32(12, true), 0x7, "RTA_DST|RTA_GATEWAY|RTA_NETMASK");
  assertEquals(view.getInt32(20, true), 0x1234, "rtm_seq");
  assertEquals(
    [...message.subarray(24, 92)],
    new Array(68).fill(0),
    "errno, use, inits, rt_metrics",
  );
  assertEquals([...message.subarray(128, 136)], [16, 2, 0, 0, 0xff, 0xf0, 0, 0], "netmask /12");
});
