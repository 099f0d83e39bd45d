/**
 * A SYN flood through the TUN that never completes a handshake: 20,000 SYNs toward a service's
 * VIP, from the address the lab's real clients use too. The half-open limits bound the dials;
 * past them SYNs get SYN cookies (no state, no dial), so memory and descriptors stay bounded and
 * a real client (curl in a loop), whose ACK brings its cookie back, keeps getting in.
 */
import { assert } from "../assert.ts";
import { labTest } from "../lab/lab.ts";
import { CurlLoop, DEMO_RESOLV, ResourceWatch, startDemo, vipOf } from "./harness.ts";
import { TcpFlag, TcpOption, tcpPacket } from "./hostile_packets.ts";
import { RawIpv4Socket } from "./raw_socket.ts";

const FLOOD = 20_000;
const FIRST_PORT = 1024;

labTest(
  "adversarial: 20,000 unanswered SYNs keep dials, RSS and descriptors bounded; curl keeps working",
  async (lab) => {
    const k8stun = await startDemo(lab);
    const vip = await vipOf(lab, "hello.demo");
    // A spoofed SYN's SYN-ACK goes nowhere: the lab's kernel must not answer it with a RST
    // (which would free the slot at once). Raw sends carry no port in their route lookup.
    const rule = await lab.sh(
      `ip rule add pref 90 ipproto tcp sport ${FIRST_PORT}-${FIRST_PORT + FLOOD - 1} blackhole`,
    );
    assert(rule.code === 0, rule.stderr);
    const watch = ResourceWatch.start(k8stun.pid);
    const users = CurlLoop.start(lab);
    using raw = RawIpv4Socket.open(lab.name);
    for (let i = 0; i < FLOOD; i++) {
      raw.send(tcpPacket({ src: "198.18.0.1", dst: vip }, {
        srcPort: FIRST_PORT + i,
        dstPort: 80,
        seq: i * 7919,
        flags: TcpFlag.SYN,
        options: new Uint8Array(TcpOption.mss(1460)),
      }));
      if (i % 500 === 499) await new Promise((r) => setTimeout(r, 25)); // ~20k SYNs/s
    }
    // The curls go on while the flood's SYN-ACKs go unanswered.
    await new Promise((r) => setTimeout(r, 8000));
    const seen = await users.stop();
    watch.check("20k SYN flood", { maxRssMiB: 600, maxFds: 1500 });
    console.log(`[users] ${seen.ok} curls succeeded, ${seen.failed} failed during the flood`);
    assert(seen.ok >= 5, JSON.stringify(seen));
    assert(seen.failed === 0, JSON.stringify(seen));
    const after = await lab.run("curl", ["-sS", "-m", "5", "http://hello.demo/"]);
    assert(after.code === 0, after.stderr);
  },
  { resolvConf: DEMO_RESOLV },
);
