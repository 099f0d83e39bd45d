/**
 * Raw IPv4 sockets inside a lab namespace, for packets no kernel socket API would send: the
 * socket is created on this thread after `setns(2)` into the lab's network namespace and keeps
 * that namespace after the thread switches back, so the test process itself sends and receives
 * in the lab while everything else it does stays on the host.
 */
import { cString, Errno } from "../../ffi/linux/libc.ts";

const SYMBOLS = {
  open: { parameters: ["buffer", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  setns: { parameters: ["i32", "i32"], result: "i32" },
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  sendto: { parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"], result: "isize" },
  recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  __errno_location: { parameters: [], result: "pointer" },
} as const;

const O_RDONLY_CLOEXEC = 0o2000000;
const CLONE_NEWNET = 0x40000000;
const AF_INET = 2;
const SOCK_RAW = 3;
const SOCK_NONBLOCK = 0o4000;
const IPPROTO_RAW = 255;
const MSG_DONTWAIT = 0x40;

type RawLibc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

function errno(libc: RawLibc): number {
  const p = libc.__errno_location();
  return p ? new Deno.UnsafePointerView(p).getInt32(0) : 0;
}

function check(libc: RawLibc, result: number | bigint, what: string): number {
  if (Number(result) < 0) throw new Error(`${what} failed: errno ${errno(libc)}`);
  return Number(result);
}

/**
 * Runs `fn` (synchronously) with this thread in the network namespace `namespace` (an
 * `ip netns` name): sockets and listeners it creates live in the lab.
 */
export function inNamespace<T>(namespace: string, fn: () => T): T {
  const lib = Deno.dlopen("libc.so.6", SYMBOLS);
  const libc = lib.symbols;
  const home = check(
    libc,
    libc.open(cString("/proc/thread-self/ns/net"), O_RDONLY_CLOEXEC),
    "open own netns",
  );
  try {
    const target = check(
      libc,
      libc.open(cString(`/var/run/netns/${namespace}`), O_RDONLY_CLOEXEC),
      `open netns ${namespace}`,
    );
    try {
      check(libc, libc.setns(target, CLONE_NEWNET), `setns ${namespace}`);
      try {
        return fn();
      } finally {
        check(libc, libc.setns(home, CLONE_NEWNET), "setns back");
      }
    } finally {
      libc.close(target);
    }
  } finally {
    libc.close(home);
    lib.close();
  }
}

/**
 * A raw IPv4 socket pair in a lab: `send` takes a whole IPv4 packet (any source address,
 * IP_HDRINCL), `receive` returns packets of `protocol` addressed to the lab's local addresses
 * (e.g. what k8stun's TUN answered to a spoofed SYN).
 */
export class RawIpv4Socket implements Disposable {
  readonly #lib = Deno.dlopen("libc.so.6", SYMBOLS);
  #sender = -1;
  #receiver = -1;
  readonly #buffer = new Uint8Array(65536);

  private constructor() {}

  /** Opens the sockets inside `namespace`; `protocol` is what `receive` sees (6 TCP, 17 UDP, 1 ICMP). */
  static open(namespace: string, protocol = 6): RawIpv4Socket {
    const socket = new RawIpv4Socket();
    const libc = socket.#lib.symbols;
    inNamespace(namespace, () => {
      socket.#sender = check(libc, libc.socket(AF_INET, SOCK_RAW, IPPROTO_RAW), "raw send socket");
      socket.#receiver = check(
        libc,
        libc.socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK, protocol),
        "raw receive socket",
      );
    });
    return socket;
  }

  /** Sends one IPv4 packet to its destination address. */
  send(packet: Uint8Array): void {
    const libc = this.#lib.symbols;
    const address = new Uint8Array(16);
    address[0] = AF_INET;
    address.set(packet.subarray(16, 20), 4);
    check(libc, libc.sendto(this.#sender, packet, BigInt(packet.length), 0, address, 16), "sendto");
  }

  /** Every packet queued now (without waiting). */
  drain(): Uint8Array[] {
    const libc = this.#lib.symbols;
    const packets: Uint8Array[] = [];
    while (true) {
      const n = Number(
        libc.recv(this.#receiver, this.#buffer, BigInt(this.#buffer.length), MSG_DONTWAIT),
      );
      if (n < 0) {
        if (errno(libc) === Errno.EAGAIN) return packets;
        throw new Error(`recv failed: errno ${errno(libc)}`);
      }
      packets.push(this.#buffer.slice(0, n));
    }
  }

  /** Waits up to `timeoutMs` for a packet `accept` takes. */
  async receive(
    accept: (packet: Uint8Array) => boolean,
    timeoutMs: number,
  ): Promise<Uint8Array | undefined> {
    const deadline = Date.now() + timeoutMs;
    while (true) {
      const found = this.drain().find(accept);
      if (found) return found;
      if (Date.now() >= deadline) return undefined;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  close(): void {
    if (this.#sender >= 0) this.#lib.symbols.close(this.#sender);
    if (this.#receiver >= 0) this.#lib.symbols.close(this.#receiver);
    this.#sender = this.#receiver = -1;
    this.#lib.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
