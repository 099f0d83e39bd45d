/**
 * A TUN stand-in for packet-loop tests without root: one end of a SOCK_SEQPACKET socketpair goes
 * to the loop as its "TUN" (one IPv4 packet per message, non-blocking, like the device), the test
 * writes the application's packets into the other end and reads what the loop sends.
 */
import { Errno, errno, type Libc } from "../../ffi/linux/libc.ts";
import { parseIpv4 } from "../../core/net/wire/ipv4.ts";

const AF_UNIX = 1;
const SOCK_SEQPACKET = 5;
const SOCK_NONBLOCK = 0x800;
const SOCK_CLOEXEC = 0x80000;

/** Both ends of the pair. */
export class FakeTun implements Disposable {
  private constructor(
    readonly libc: Libc,
    /** The end the loop reads and writes as its TUN. */
    readonly loopFd: number,
    readonly testFd: number,
  ) {}

  static open(libc: Libc): FakeTun {
    const fds = new Int32Array(2);
    const type = SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC;
    if (libc.socketpair(AF_UNIX, type, 0, new Uint8Array(fds.buffer)) !== 0) {
      throw new Error(`socketpair failed: errno ${errno(libc)}`);
    }
    return new FakeTun(libc, fds[0], fds[1]);
  }

  /** Hands a packet to the loop as if the application's kernel had sent it. */
  write(packet: Uint8Array): void {
    if (Number(this.libc.write(this.testFd, packet, BigInt(packet.length))) !== packet.length) {
      throw new Error(`fake TUN write failed: errno ${errno(this.libc)}`);
    }
  }

  /**
   * The next packet the loop sent that `accept` wants (others are skipped), or undefined when
   * none came within `timeoutMs`.
   */
  async read(
    timeoutMs: number,
    accept: (packet: Uint8Array) => boolean = () => true,
  ): Promise<Uint8Array | undefined> {
    const buffer = new Uint8Array(65536);
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const n = Number(this.libc.read(this.testFd, buffer, BigInt(buffer.length)));
      if (n > 0) {
        const packet = buffer.slice(0, n);
        if (accept(packet)) return packet;
        continue;
      }
      if (n < 0 && errno(this.libc) !== Errno.EAGAIN) throw new Error("fake TUN read failed");
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    return undefined;
  }

  /** Every packet the loop sent within `ms`. */
  async readAll(ms: number): Promise<Uint8Array[]> {
    const packets: Uint8Array[] = [];
    const deadline = Date.now() + ms;
    let packet;
    while ((packet = await this.read(Math.max(1, deadline - Date.now()))) !== undefined) {
      packets.push(packet);
    }
    return packets;
  }

  [Symbol.dispose](): void {
    this.libc.close(this.loopFd);
    this.libc.close(this.testFd);
  }
}

/** The IPv4 protocol number of a packet (0 when it is not IPv4). */
export function protocolOf(packet: Uint8Array): number {
  return parseIpv4(packet, packet.length)?.protocol ?? 0;
}
