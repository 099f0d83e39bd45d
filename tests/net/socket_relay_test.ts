/**
 * The packet loop's own dials (core/net/packet_loop/socket_relay.ts; docs/architecture.md,
 * "Dialed from the packet loop") on real loopback sockets (ffi/linux/loop_sockets.ts), against a
 * stack that records what it is told:
 * connect, the SOCKS5 replies, both directions with backpressure, the ends, and every failure.
 */
import { assertEquals } from "../assert.ts";
import { type RelayedStack, SocketRelay } from "../../core/net/packet_loop/socket_relay.ts";
import { type LoopEvent, SOCKS5_REPLY_BASE } from "../../core/net/packet_loop/protocol.ts";
import { socks5NoAuthConnect } from "../../core/net/wire/socks5_client.ts";
import { LinuxLoopSockets } from "../../ffi/linux/loop_sockets.ts";
import { openLibc } from "../../ffi/linux/libc.ts";
import type { FlowId } from "../../core/net/stack_types.ts";

const ignore = Deno.build.os !== "linux";
const LOOPBACK = 0x7f000001;
const ID = 7;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A stack that takes at most `room` bytes (then nothing until `room` grows), and records. */
class RecordingStack implements RelayedStack {
  room = Infinity;
  accepted: FlowId[] = [];
  received: number[] = [];
  consumed_ = 0;
  finished = false;
  accept(id: FlowId): void {
    this.accepted.push(id);
  }
  send(_id: FlowId, data: Uint8Array): number {
    const n = Math.min(data.length, this.room);
    this.room -= n;
    this.received.push(...data.subarray(0, n));
    return n;
  }
  consumed(_id: FlowId, n: number): void {
    this.consumed_ += n;
  }
  finish(): void {
    this.finished = true;
  }
  get text(): string {
    return decoder.decode(new Uint8Array(this.received));
  }
}

function setUp() {
  const lib = openLibc();
  const sockets = new LinuxLoopSockets(lib.symbols);
  const stack = new RecordingStack();
  const events: LoopEvent[] = [];
  const resets: [FlowId, boolean][] = [];
  const relay = new SocketRelay(
    sockets,
    stack,
    (e) => events.push(e),
    (id, byPeer) => resets.push([id, byPeer]),
  );
  return {
    relay,
    stack,
    events,
    resets,
    /** Serves the relay (at `clock()`) while the test's servers run, until `done` holds. */
    async until(done: () => boolean, what: string, clock = () => performance.now()) {
      const deadline = Date.now() + 5000;
      while (!done()) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        relay.service(clock());
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
    },
    [Symbol.dispose]() {
      relay.closeAll();
      sockets.closeAll();
      lib.close();
    },
  };
}

/** A one-connection server on loopback; `serve` gets the connection. */
function server(serve: (conn: Deno.Conn) => Promise<void>) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const done = listener.accept().then(serve).catch(() => {}).finally(() => listener.close());
  return { port: (listener.addr as Deno.NetAddr).port, done };
}

async function readAll(conn: Deno.Conn): Promise<string> {
  const chunks: Uint8Array[] = [];
  const buffer = new Uint8Array(4096);
  for (let n = await conn.read(buffer); n !== null; n = await conn.read(buffer)) {
    chunks.push(buffer.slice(0, n));
  }
  return chunks.map((c) => decoder.decode(c)).join("");
}

Deno.test({
  name:
    "socket relay: connects, accepts, carries both ways, and passes each end on after the bytes before it",
  ignore,
}, async () => {
  using t = setUp();
  let serverGot = "";
  const echo = server(async (conn) => {
    serverGot = await readAll(conn); // until the app's FIN
    await conn.write(encoder.encode(serverGot.toUpperCase()));
    conn.close();
  });
  t.relay.connect(ID, { address: LOOPBACK, port: echo.port }, performance.now());
  await t.until(() => t.stack.accepted.length === 1, "the accept");
  assertEquals(t.events[0], { ev: "connected", id: ID });
  t.relay.data(ID, encoder.encode("hello, "));
  t.relay.data(ID, encoder.encode("pod"));
  t.relay.appEnded(ID);
  t.relay.flush(performance.now());
  assertEquals(t.stack.consumed_, 10, "the app's window reopens by what the socket took");
  await t.until(() => t.stack.finished, "the pod's FIN");
  await echo.done;
  assertEquals(serverGot, "hello, pod");
  assertEquals(t.stack.text, "HELLO, POD", "and the FIN came after the bytes");
  t.relay.closed(ID);
  assertEquals(t.events.at(-1), { ev: "relayed", id: ID, up: 10, down: 10 });
  assertEquals(t.relay.size, 0);
});

Deno.test({
  name: "socket relay: a refused connect reports ECONNREFUSED and keeps nothing",
  ignore,
}, async () => {
  using t = setUp();
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  t.relay.connect(ID, { address: LOOPBACK, port }, performance.now());
  await t.until(() => t.events.length > 0, "the outcome");
  assertEquals(t.events, [{ ev: "connect-failed", id: ID, code: 111 }]);
  assertEquals(t.stack.accepted, []);
  assertEquals(t.relay.size, 0);
});

Deno.test({
  name:
    "socket relay: bytes the app cannot take yet stay in the relay, which stops reading until the stack has room",
  ignore,
}, async () => {
  using t = setUp();
  const payload = new Uint8Array(300_000).map((_, i) => i % 251);
  const source = server(async (conn) => {
    for (let at = 0; at < payload.length;) at += await conn.write(payload.subarray(at));
    conn.close();
  });
  t.stack.room = 1000;
  t.relay.connect(ID, { address: LOOPBACK, port: source.port }, performance.now());
  await t.until(() => t.stack.received.length === 1000, "the first 1000 bytes");
  for (let i = 0; i < 20; i++) t.relay.service(performance.now());
  assertEquals(t.stack.received.length, 1000, "nothing more while the stack is full");
  t.stack.room = Infinity;
  t.relay.writable(ID, performance.now());
  await t.until(() => t.stack.finished, "the rest and the FIN");
  await source.done;
  assertEquals(new Uint8Array(t.stack.received), payload, "in order, byte-exact");
});

Deno.test({
  name:
    "socket relay: a far end that reset the connection resets the app (its FIN came first: the app saw the end, then the reset)",
  ignore,
}, async () => {
  using t = setUp();
  // Closing a socket with unread bytes in its receive queue sends RST after the FIN (RFC 2525
  // §2.17): the relay reads the end, and the app's next bytes meet the reset.
  const rude = server(async (conn) => {
    await new Promise((resolve) => setTimeout(resolve, 50));
    conn.close();
  });
  t.relay.connect(ID, { address: LOOPBACK, port: rude.port }, performance.now());
  await t.until(() => t.stack.accepted.length === 1, "the accept");
  t.relay.data(ID, encoder.encode("unread"));
  await rude.done;
  await t.until(() => t.stack.finished, "the end");
  await new Promise((resolve) => setTimeout(resolve, 20)); // the RST behind the FIN
  t.relay.data(ID, encoder.encode("more"));
  await t.until(() => t.resets.length === 1, "the reset");
  assertEquals(t.resets, [[ID, true]], "reset by the peer, not a failure of ours");
  assertEquals(t.relay.size, 0, "the socket is gone");
  assertEquals(t.events.at(-1), { ev: "relayed", id: ID, up: 10, down: 0 });
});

/** A SOCKS5 proxy that reads the greeting and CONNECT (13 bytes for an IPv4 target), answers. */
function socksProxy(answer: number[] | "close" | "silent") {
  return server(async (conn) => {
    const got = new Uint8Array(64);
    let have = 0;
    while (have < 13) {
      const n = await conn.read(got.subarray(have));
      if (n === null) return;
      have += n;
    }
    if (answer === "silent") return void await conn.read(got).catch(() => {});
    if (answer !== "close") await conn.write(new Uint8Array(answer));
    conn.close();
  });
}

Deno.test({
  name:
    "socket relay: through a SOCKS5 proxy the flow is accepted only after its success reply, and bytes after the reply reach the app",
  ignore,
}, async () => {
  using t = setUp();
  const proxy = socksProxy([5, 0, 5, 0, 0, 1, 10, 0, 0, 9, 0, 80, ...encoder.encode("banner")]);
  t.relay.connect(ID, {
    address: LOOPBACK,
    port: proxy.port,
    socks5: socks5NoAuthConnect("10.0.0.9", 80),
  }, performance.now());
  await t.until(() => t.stack.finished, "the banner and the FIN");
  assertEquals(t.stack.accepted, [ID]);
  assertEquals(t.stack.text, "banner");
});

Deno.test({
  name:
    "socket relay: a SOCKS5 refusal, a proxy that hangs up and one that never answers fail the dial with their cause",
  ignore,
}, async (step) => {
  const cases: [string, number[] | "close" | "silent", number][] = [
    ["refused (reply 5)", [5, 0, 5, 5, 0, 1, 0, 0, 0, 0, 0, 0], SOCKS5_REPLY_BASE + 5],
    ["host unreachable (reply 4)", [5, 0, 5, 4, 0, 1, 0, 0, 0, 0, 0, 0], SOCKS5_REPLY_BASE + 4],
    ["hung up before replying", "close", SOCKS5_REPLY_BASE + 1],
    ["answered garbage", [9, 9, 9, 9], SOCKS5_REPLY_BASE + 1],
    ["never answers (10 s)", "silent", 110],
  ];
  for (const [what, answer, code] of cases) {
    await step.step(what, async () => {
      using t = setUp();
      const proxy = socksProxy(answer);
      const start = performance.now();
      // The silent proxy's dial runs out: the relay's clock jumps past the deadline.
      const clock = answer === "silent"
        ? () => performance.now() + (performance.now() - start > 100 ? 11_000 : 0)
        : () => performance.now();
      t.relay.connect(ID, {
        address: LOOPBACK,
        port: proxy.port,
        socks5: socks5NoAuthConnect("10.0.0.9", 80),
      }, start);
      await t.until(() => t.events.length > 0, "the outcome", clock);
      assertEquals(t.events, [{ ev: "connect-failed", id: ID, code }]);
      assertEquals(t.stack.accepted, [], "never accepted");
      assertEquals(t.relay.size, 0, "the socket is gone");
      t.relay.closeAll();
      await proxy.done;
    });
  }
});

Deno.test({
  name:
    "loop sockets: asking for nothing twice, or for a socket never watched, is no error (the epoll set is left alone)",
  ignore,
}, async () => {
  const lib = openLibc();
  const sockets = new LinuxLoopSockets(lib.symbols);
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const fd = sockets.connect(LOOPBACK, (listener.addr as Deno.NetAddr).port);
    const peer = await listener.accept();
    sockets.watch(fd, false, false); // never in the set
    sockets.watch(fd, true, true);
    sockets.watch(fd, false, false);
    sockets.watch(fd, false, false);
    sockets.watch(fd, true, false);
    peer.close();
  } finally {
    listener.close();
    sockets.closeAll();
    lib.close();
  }
});

Deno.test({
  name:
    "socket relay: a socket call that throws resets that flow only, and is reported; the others carry on",
  ignore,
}, async () => {
  const lib = openLibc();
  /** The first socket opened fails once the relay wants to read it. */
  let failing: number | undefined;
  class FlakySockets extends LinuxLoopSockets {
    override connect(address: number, port: number): number {
      const fd = super.connect(address, port);
      failing ??= fd;
      return fd;
    }
    override watch(fd: number, readable: boolean, writable: boolean): void {
      if (fd === failing && readable) throw new Error("epoll_ctl failed: errno 12");
      super.watch(fd, readable, writable);
    }
  }
  const sockets = new FlakySockets(lib.symbols);
  const stack = new RecordingStack();
  const events: LoopEvent[] = [];
  const resets: [FlowId, boolean][] = [];
  const faults: string[] = [];
  const relay = new SocketRelay(
    sockets,
    stack,
    (e) => events.push(e),
    (id, byPeer) => resets.push([id, byPeer]),
    (kind, error) => faults.push(`${kind}: ${(error as Error).message}`),
  );
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const serving = (async () => {
    for (let i = 0; i < 2; i++) {
      const conn = await listener.accept();
      conn.write(encoder.encode("hi")).then(() => conn.close()).catch(() => {});
    }
  })();
  try {
    relay.connect(1, { address: LOOPBACK, port }, performance.now());
    relay.connect(2, { address: LOOPBACK, port }, performance.now());
    const deadline = Date.now() + 5000;
    while (!(stack.finished && resets.length > 0) && Date.now() < deadline) {
      relay.service(performance.now());
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    assertEquals(resets, [[1, false]], "flow 1 is reset as a failure of ours");
    assertEquals(faults, ["relayed socket: epoll_ctl failed: errno 12"]);
    assertEquals(stack.text, "hi", "flow 2 got its bytes");
    assertEquals(stack.finished, true);
  } finally {
    await serving;
    listener.close();
    relay.closeAll();
    sockets.closeAll();
    lib.close();
  }
});
