/**
 * macOS end to end, run by CI on the real platform under sudo (.github/workflows/ci.yml): a utun
 * comes up through the device seam, a local echo server sits behind the direct dialer, 64 MiB go
 * through a VIP and back byte-exact, and the VIP route is gone once the data plane closed.
 */
import { assert, assertEquals } from "../assert.ts";
import { openTunPlatform } from "../../ffi/tun_platform.ts";
import { startTunDataPlane } from "../../core/net/data_plane/data_plane.ts";
import { Router } from "../../core/router.ts";
import { createDirectDialer } from "../../plugins/direct/mod.ts";
import { ipv4ToNumber } from "../../core/vip.ts";

const BYTES = 64 * 1024 * 1024;
/** A range of its own, so the smoke test never touches a range a runner uses. */
const RANGE = "198.19.240.0";

async function routesToRange(): Promise<string> {
  const out = await new Deno.Command("netstat", { args: ["-rn", "-f", "inet"], stdout: "piped" })
    .output();
  return new TextDecoder().decode(out.stdout).split("\n").filter((line) =>
    line.startsWith("198.19.240")
  ).join("\n");
}

Deno.test({
  name:
    "utun smoke: 64 MiB through a VIP to a local echo server are byte-exact, the route goes at exit",
  // macOS only, as root: Linux runs the same data plane in the lab tests (lab_data_plane_test.ts).
  ignore: Deno.build.os !== "darwin" || Deno.uid() !== 0,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const echo = (async () => {
      const conn = await listener.accept();
      await conn.readable.pipeTo(conn.writable);
    })();
    const platform = openTunPlatform();
    const plane = await startTunDataPlane({
      device: platform.openDevice({
        name: "",
        address: ipv4ToNumber("198.19.240.1")!,
        mtu: 1500,
        offload: true, // refused quietly: utun has no offload
      }),
      host: platform.host,
      network: { base: ipv4ToNumber(RANGE)!, prefix: 24 },
      router: new Router({
        resolvers: [{ name: "smoke", resolveAddress: () => ({ kind: "host", host: "127.0.0.1" }) }],
        dialers: [createDirectDialer()],
      }),
      idleTimeoutMs: 0,
    });
    try {
      assert(plane.name.startsWith("utun"), plane.name);
      assertEquals(plane.offload.segmentation, false);
      assert((await routesToRange()).length > 0, "the VIP range is routed into the utun");
      const conn = await Deno.connect({ hostname: "198.19.240.2", port: listener.addr.port });
      const payload = new Uint8Array(BYTES);
      for (let i = 0; i < BYTES; i += 4096) payload[i] = (i / 4096) & 0xff;
      crypto.getRandomValues(payload.subarray(0, 65536));
      const writing = (async () => {
        for (let at = 0; at < BYTES; at += 65536) {
          let off = at;
          while (off < at + 65536) off += await conn.write(payload.subarray(off, at + 65536));
        }
        await conn.closeWrite();
      })();
      const received = new Uint8Array(BYTES);
      let length = 0;
      const buffer = new Uint8Array(65536);
      while (true) {
        const n = await conn.read(buffer);
        if (n === null) break;
        assert(length + n <= BYTES, "no more bytes than were sent");
        received.set(buffer.subarray(0, n), length);
        length += n;
      }
      await writing;
      conn.close();
      assertEquals(length, BYTES);
      assert(received.every((b, i) => b === payload[i]), "byte-exact");
      await echo;
    } finally {
      await plane.close();
      platform.close();
      listener.close();
    }
    assertEquals(await routesToRange(), "", "no route to the VIP range after exit");
  },
});
