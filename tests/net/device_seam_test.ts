/**
 * The device seam (core/net/device/tun_device.ts): the data plane knows no OS — it runs on any
 * TunDevice it is handed (here a socketpair standing in for a TUN, no root needed), routes the VIP
 * range into it, and closes it; and nothing under core/ imports an OS module.
 */
import { assert, assertEquals } from "../assert.ts";
import { openLibc } from "../../ffi/linux/libc.ts";
import { LINUX_PACKET_IO, linuxTunHost } from "../../ffi/linux/tun_device.ts";
import { type Ipv4Prefix, NO_OFFLOAD, type TunDevice } from "../../core/net/device/tun_device.ts";
import { startTunDataPlane } from "../../core/net/data_plane/data_plane.ts";
import { Router } from "../../core/router.ts";
import { createDirectDialer } from "../../plugins/direct/mod.ts";
import { parseIpv4Address } from "../../core/net/wire/ipv4.ts";
import { ACK, PSH, SYN } from "../../core/net/wire/tcp.ts";
import { APP, appSegment, parseOut } from "./packets.ts";
import { FakeTun, protocolOf } from "./fake_tun.ts";

const CORE = new URL("../../core/", import.meta.url);

async function* typeScriptFiles(dir: URL): AsyncGenerator<URL> {
  for await (const entry of Deno.readDir(dir)) {
    const url = new URL(entry.name + (entry.isDirectory ? "/" : ""), dir);
    if (entry.isDirectory) yield* typeScriptFiles(url);
    else if (entry.name.endsWith(".ts")) yield url;
  }
}

Deno.test("device seam: nothing under core/ imports an OS module (ffi/)", async () => {
  const offenders: string[] = [];
  for await (const file of typeScriptFiles(CORE)) {
    const text = await Deno.readTextFile(file);
    if (/(?:from\s+|import\s*\(\s*)["'][^"']*\/ffi\//.test(text)) {
      offenders.push(file.pathname.slice(CORE.pathname.length));
    }
  }
  assertEquals(offenders, [], "core/ reaches the OS only through the device and host it is given");
});

Deno.test({
  name:
    "device seam: the data plane relays a connection over any TunDevice it is given, routes the VIP range into it and closes it",
  // The stand-in device is a Linux socketpair driven by glibc; macOS has utun_smoke_test.ts.
  ignore: Deno.build.os !== "linux",
}, async () => {
  const lib = openLibc();
  const tun = FakeTun.open(lib.symbols);
  const routes: Ipv4Prefix[] = [];
  let closes = 0;
  const device: TunDevice = {
    name: "fake0",
    address: APP,
    mtu: 1500,
    offload: NO_OFFLOAD,
    ifindex: () => 1,
    addRoutes: (prefixes) => void routes.push(...prefixes),
    packetIo: { module: LINUX_PACKET_IO, fd: tun.loopFd, mtu: 1500, offload: NO_OFFLOAD },
    close: () => void closes++,
  };
  // The pod: an echo server on loopback, reached through the direct dialer.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const served = (async () => {
    const conn = await listener.accept();
    const buffer = new Uint8Array(100);
    const n = await conn.read(buffer);
    await conn.write(buffer.subarray(0, n ?? 0));
    conn.close();
  })();
  const router = new Router({
    resolvers: [{ name: "test", resolveAddress: () => ({ kind: "host", host: "127.0.0.1" }) }],
    dialers: [createDirectDialer()],
  });
  const plane = await startTunDataPlane({
    device,
    host: linuxTunHost(lib.symbols),
    network: { base: parseIpv4Address("198.18.0.0"), prefix: 16 },
    router,
    idleTimeoutMs: 0,
  });
  try {
    assertEquals(routes, [{ address: parseIpv4Address("198.18.0.0"), prefix: 16 }]);
    assertEquals(plane.name, "fake0");
    const dstPort = listener.addr.port;
    tun.write(appSegment({ dstPort, flags: SYN, seq: 1000, mss: 1460 }));
    const synAck = parseOut((await tun.read(5000, (p) => protocolOf(p) === 6))!);
    assertEquals(synAck.flags, SYN | ACK, "accepted once the dial connected");
    const ack = (synAck.seq + 1) >>> 0;
    const payload = new TextEncoder().encode("through the seam");
    tun.write(appSegment({ dstPort, flags: ACK | PSH, seq: 1001, ack, payload }));
    const echoed = await tun.read(5000, (p) => parseOut(p).payloadLength > 0);
    assert(echoed !== undefined, "the echo came back through the device");
    assertEquals(new TextDecoder().decode(parseOut(echoed).payload), "through the seam");
    await served;
  } finally {
    await plane.close();
    listener.close();
    tun[Symbol.dispose]();
    lib.close();
  }
  assertEquals(closes, 1, "the data plane closes the device it was handed");
});
