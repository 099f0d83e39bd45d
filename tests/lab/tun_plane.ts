/**
 * Data-plane fixture run inside a lab namespace (benchmarks and lab tests): the servers of
 * pod_servers.ts in a Worker and the TUN data plane with a router mapping every VIP to 127.0.0.1
 * through the direct dialer. Prints READY when up. K8STUN_LAB_OFFLOAD=off picks the Linux backend
 * without offload (checksums in TypeScript, MTU-sized packets: the path macOS takes).
 * K8STUN_LAB_SOCKS_UPSTREAM=host:port dials through that SOCKS5 proxy instead (`--socks-upstream`);
 * K8STUN_LAB_SERVERS=off leaves the servers to another process (so this one's CPU is the data
 * plane's alone).
 */
import { DEFAULT_BUSY_POLL_US, startTunDataPlane } from "../../core/net/data_plane/data_plane.ts";
import { Router } from "../../core/router.ts";
import { ipv4ToNumber } from "../../core/vip.ts";
import { createDirectDialer } from "../../plugins/direct/mod.ts";
import { openTunPlatform } from "../../ffi/tun_platform.ts";
import { createSocksUpstreamDialer, parseSocksUpstream } from "../../plugins/socks_upstream/mod.ts";

const mtu = Number(Deno.args[0] ?? 1500);
const SOURCE_BYTES = Number(Deno.args[1] ?? 100_000_000);

// The servers run in a Worker, on their own event loop: like a pod, they are not the relay's work.
if (Deno.env.get("K8STUN_LAB_SERVERS") !== "off") {
  const servers = new Worker(new URL("./pod_servers.ts", import.meta.url), { type: "module" });
  servers.postMessage({ sourceBytes: SOURCE_BYTES });
  await new Promise((resolve) => servers.onmessage = resolve);
}
const socks = Deno.env.get("K8STUN_LAB_SOCKS_UPSTREAM");
const router = new Router({
  resolvers: [{ name: "bench", resolveAddress: () => ({ kind: "host", host: "127.0.0.1" }) }],
  dialers: [socks ? createSocksUpstreamDialer(parseSocksUpstream(socks)) : createDirectDialer()],
});
const platform = openTunPlatform();
const offload = Deno.env.get("K8STUN_LAB_OFFLOAD") !== "off";
const plane = await startTunDataPlane({
  device: platform.openDevice({ name: "", address: ipv4ToNumber("198.18.0.1")!, mtu, offload }),
  host: platform.host,
  network: { base: ipv4ToNumber("198.18.0.0")!, prefix: 16 },
  router,
  idleTimeoutMs: 0,
  // The TUN bench holds 10,000 idle connections to measure their memory.
  maxConnections: 100_000,
  receiveBuffer: 4 * 1024 * 1024,
  sendBuffer: 4 * 1024 * 1024,
  // K8STUN_LAB_CLOSES=1 prints how each connection ended: "CLOSED <port> closed|reset|error".
  telemetry: Deno.env.get("K8STUN_LAB_CLOSES") === "1"
    ? {
      emit(event) {
        if (event.type !== "connection_closed") return;
        const end = event.reset ? "reset" : event.error ? "error" : "closed";
        console.log(`CLOSED ${event.connection.dstPort} ${end} ${event.error ?? ""}`);
      },
    }
    : undefined,
  // K8STUN_LAB_BUSY_POLL_US=0 compares with a loop that sleeps at once.
  busyPollMicros: Number(Deno.env.get("K8STUN_LAB_BUSY_POLL_US") ?? DEFAULT_BUSY_POLL_US),
});
if (plane.offload.segmentation !== offload) {
  throw new Error(`asked for offload ${offload ? "on" : "off"}, the device has the other`);
}
console.log("READY");
