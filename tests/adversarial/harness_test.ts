/**
 * The adversarial tier's own tools, checked against a running demo: a raw SYN built by hand
 * reaches k8stun's stack through the TUN and its SYN-ACK comes back to the raw socket; the curl
 * loop and the resource watch report what they saw.
 */
import { assert, assertEquals } from "../assert.ts";
import { labTest } from "../lab/lab.ts";
import { CurlLoop, DEMO_RESOLV, ResourceWatch, startDemo, vipOf } from "./harness.ts";
import { readTcp, TcpFlag, TcpOption, tcpPacket } from "./hostile_packets.ts";
import { RawIpv4Socket } from "./raw_socket.ts";

labTest(
  "adversarial harness: a hand-built SYN from a raw socket in the lab gets k8stun's SYN-ACK",
  async (lab) => {
    const k8stun = await startDemo(lab);
    const vip = await vipOf(lab, "hello.demo");
    const watch = ResourceWatch.start(k8stun.pid);
    const users = CurlLoop.start(lab);
    using raw = RawIpv4Socket.open(lab.name);
    raw.send(tcpPacket({ src: "198.18.0.1", dst: vip }, {
      srcPort: 45555,
      dstPort: 80,
      seq: 7777,
      flags: TcpFlag.SYN,
      options: new Uint8Array(TcpOption.mss(1460)),
    }));
    const reply = await raw.receive((packet) => readTcp(packet)?.dstPort === 45555, 5000);
    assert(reply, "no answer to the raw SYN");
    const seen = readTcp(reply)!;
    assertEquals(seen.src, vip);
    assertEquals(seen.flags & (TcpFlag.SYN | TcpFlag.ACK), TcpFlag.SYN | TcpFlag.ACK);
    assertEquals(seen.ack, 7778);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const seenByUsers = await users.stop();
    assert(seenByUsers.ok > 0 && seenByUsers.failed === 0, JSON.stringify(seenByUsers));
    const peak = watch.check("idle demo", { maxRssMiB: 1024, maxFds: 1024 });
    assert(peak.rssKiB > 0 && peak.fds > 0);
  },
  { resolvConf: DEMO_RESOLV },
);
