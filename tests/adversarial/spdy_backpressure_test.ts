/**
 * SPDY port-forward under hostile or careless peers: a pod that streams faster than the app reads,
 * an API server that floods without flow control (as Kubernetes' spdystream does), one that
 * breaks the windows it agreed to, and one that never opens a window for our writes. Memory must
 * stay bounded, the session must survive, and bytes must arrive exact once reading resumes.
 */
import { isolateMemory } from "./harness.ts";
import { createServer, type IncomingMessage } from "node:http";
import { ApiAccess } from "../../core/k8s/api_access.ts";
import type { Duplex as NodeDuplex } from "node:stream";
import type { Buffer } from "node:buffer";
// @ts-types="@types/ws"
import { type WebSocket, WebSocketServer } from "ws";
import { assert, assertEquals, assertMatch } from "../assert.ts";
import {
  controlFrame,
  dataFrame,
  FLAG_FIN,
  FrameParser,
  payloadStreamId,
  payloadWord,
  RST_FLOW_CONTROL_ERROR,
  RST_STREAM,
  SYN_REPLY,
  SYN_STREAM,
  synReplyPayload,
  WINDOW_UPDATE,
  windowUpdatePayload,
} from "../../core/k8s/spdy/frames.ts";
import { HeaderBlockEncoder } from "../../core/k8s/spdy/headers.ts";
import { DEMO_FIXTURE, startSimCluster } from "../../sim/mod.ts";
import {
  PortForwardSession,
  SPDY_TUNNEL_PROTOCOL,
} from "../../plugins/portforward/forward_session.ts";
import { apiRequestOptions } from "../../core/k8s/api_connection.ts";
import type { Duplex } from "../../mod.ts";

const MiB = 1024 * 1024;
/** The byte at stream offset `i` of every test payload: position-dependent, so loss or
 * reordering shows. */
const patternByte = (i: number) => (i * 31 + (i >>> 16)) & 0xff;

function pattern(offset: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = patternByte(offset + i);
  return out;
}

/** Reads `readable` to its end, checking every byte against the pattern; returns the count. */
async function readPattern(readable: ReadableStream<Uint8Array>): Promise<number> {
  let offset = 0;
  for await (const chunk of readable) {
    for (let i = 0; i < chunk.length; i++) {
      if (chunk[i] !== patternByte(offset + i)) {
        throw new Error(`byte ${offset + i} is ${chunk[i]}, not ${patternByte(offset + i)}`);
      }
    }
    offset += chunk.length;
  }
  return offset;
}

/** Polls `value` until it stops changing for `quietMs` (or `limitMs` passed). */
async function settled(value: () => number, quietMs = 600, limitMs = 8_000): Promise<number> {
  const deadline = Date.now() + limitMs;
  let last = value();
  let since = Date.now();
  while (Date.now() < deadline && Date.now() - since < quietMs) {
    await new Promise((r) => setTimeout(r, 50));
    if (value() !== last) {
      last = value();
      since = Date.now();
    }
  }
  return last;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What a scripted API server does with one port-forward request (an error+data stream pair). */
interface FakeRequest {
  /** Sends a frame to the client (for the tunnel: one binary message). */
  send(frame: Uint8Array): void;
  dataId: number;
  errorId: number;
  /** Bytes the client sent on the data stream so far. */
  received: Uint8Array[];
  /** The socket's unsent bytes (a kubelet's copy loop waits on a full socket). */
  bufferedAmount(): number;
}

/**
 * A fake API server speaking the SPDY tunnel on loopback: it replies to every stream and hands
 * each complete request to `onRequest`. `frames` records the client's control frames.
 */
async function fakeApiServer(onRequest: (request: FakeRequest, index: number) => void) {
  const controls: { type: number; payload: Uint8Array }[] = [];
  const sockets = new Set<WebSocket>();
  const chooser = new WebSocketServer({
    noServer: true,
    handleProtocols: () => SPDY_TUNNEL_PROTOCOL,
  });
  const server = createServer((_req, res) => res.writeHead(404).end());
  server.on("upgrade", (req: IncomingMessage, socket: NodeDuplex, head: Buffer) => {
    // `ws` rejects "/" in a subprotocol token: a placeholder; handleProtocols' answer is echoed.
    req.headers["sec-websocket-protocol"] = "placeholder";
    chooser.handleUpgrade(req, socket, head, (ws: WebSocket) => {
      sockets.add(ws);
      ws.on("close", () => sockets.delete(ws));
      const parser = new FrameParser();
      const replies = new HeaderBlockEncoder();
      const requests: FakeRequest[] = [];
      const pending = new Map<number, FakeRequest>();
      ws.on("message", (data: Uint8Array) => {
        for (const frame of parser.push(new Uint8Array(data))) {
          if (frame.kind === "data") {
            const request = requests.find((r) => r.dataId === frame.streamId);
            if (frame.data.length > 0) request?.received.push(frame.data);
            continue;
          }
          controls.push(frame);
          if (frame.type !== SYN_STREAM) continue;
          const id = payloadStreamId(frame.payload);
          ws.send(controlFrame(SYN_REPLY, 0, synReplyPayload(id, replies.encode([]))));
          // Error stream 4k+1, data stream 4k+3 (the client's numbering).
          const errorId = id % 4 === 1 ? id : id - 2;
          const request = pending.get(errorId) ?? {
            send: (bytes: Uint8Array) => ws.send(bytes),
            dataId: errorId + 2,
            errorId,
            received: [],
            bufferedAmount: () => ws.bufferedAmount,
          };
          if (pending.delete(errorId)) {
            requests.push(request);
            onRequest(request, requests.length - 1);
          } else pending.set(errorId, request);
        }
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  return {
    controls,
    open: () => PortForwardSession.open(`ws://127.0.0.1:${port}/portforward`, {}),
    async [Symbol.asyncDispose]() {
      for (const ws of sockets) ws.terminate();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

const signal = () => new AbortController().signal;

Deno.test({
  name:
    "spdy: an API server flooding a connection the app does not read (no flow control, like spdystream) is held to about one high-water mark; reading later gets every byte",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const TOTAL = 128 * MiB;
    let sent = 0;
    await using fake = await fakeApiServer(async (request) => {
      // A pod writing as fast as the socket takes it (as the kubelet's copy loop does).
      while (sent < TOTAL) {
        const n = Math.min(32 * 1024, TOTAL - sent);
        request.send(dataFrame(request.dataId, 0, pattern(sent, n)));
        sent += n;
        while (request.bufferedAmount() > MiB) await sleep(1);
      }
      request.send(dataFrame(request.dataId, FLAG_FIN, new Uint8Array(0)));
      request.send(dataFrame(request.errorId, FLAG_FIN, new Uint8Array(0)));
    });
    const session = await fake.open();
    try {
      const memoryBefore = isolateMemory();
      const duplex = await session.openStream(80, signal());
      await settled(() => sent);
      const buffered = session.bufferedBytes;
      const memoryGrowth = isolateMemory() - memoryBefore;
      console.log(
        `unread: server sent ${(sent / MiB).toFixed(1)} MiB, session holds ${
          (buffered / MiB).toFixed(2)
        } MiB, JS memory +${(memoryGrowth / MiB).toFixed(0)} MiB`,
      );
      assert(buffered <= 2 * MiB, `the session holds ${buffered} unread bytes`);
      assert(sent < 16 * MiB, `the server got ${sent} bytes out to a reader that reads nothing`);
      assert(memoryGrowth < 64 * MiB, `JS memory grew by ${memoryGrowth} bytes`);
      assertEquals(await readPattern(duplex.readable), TOTAL);
      assertEquals(session.bufferedBytes, 0);
    } finally {
      session.close();
    }
  },
});

Deno.test({
  name:
    "spdy: an API server that announced flow control and sends past a stream's window gets that stream reset with FLOW_CONTROL_ERROR; the session serves the next stream",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using fake = await fakeApiServer((request, index) => {
      if (index === 0) {
        // A WINDOW_UPDATE says "I do flow control" (SPDY/3.1 §2.6.8), then 2 MiB on a stream
        // whose window is 1 MiB.
        request.send(controlFrame(WINDOW_UPDATE, 0, windowUpdatePayload(0, 1)));
        for (let offset = 0; offset < 2 * MiB; offset += 32 * 1024) {
          request.send(dataFrame(request.dataId, 0, pattern(offset, 32 * 1024)));
        }
      } else {
        request.send(dataFrame(request.dataId, 0, new TextEncoder().encode("still here")));
        request.send(dataFrame(request.dataId, FLAG_FIN, new Uint8Array(0)));
        request.send(dataFrame(request.errorId, FLAG_FIN, new Uint8Array(0)));
      }
    });
    const session = await fake.open();
    try {
      const hostile = await session.openStream(80, signal());
      const error = await readPattern(hostile.readable).then(() => undefined, (e) => e);
      assert(error, "the overrun stream ended without an error");
      assertMatch(String(error.message), /flow-control window/);
      const isReset = (f: { type: number; payload: Uint8Array }) =>
        f.type === RST_STREAM && payloadStreamId(f.payload) === 3;
      for (let i = 0; i < 100 && !fake.controls.some(isReset); i++) await sleep(20);
      const reset = fake.controls.find(isReset);
      assert(reset, "no RST_STREAM for the overrun stream");
      assertEquals(payloadWord(reset.payload, 1), RST_FLOW_CONTROL_ERROR);
      assert(session.bufferedBytes <= MiB, `the session holds ${session.bufferedBytes} bytes`);
      assert(!session.closed, "the session closed");
      const next = await session.openStream(80, signal());
      assertEquals(await new Response(next.readable).text(), "still here");
    } finally {
      session.close();
    }
  },
});

Deno.test({
  name:
    "spdy: writes wait for the window of an API server that does flow control, hold no more than that, and finish byte-exact when it opens",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    let request!: FakeRequest;
    await using fake = await fakeApiServer((r) => {
      request = r;
      r.send(controlFrame(WINDOW_UPDATE, 0, windowUpdatePayload(0, 1)));
      r.send(dataFrame(r.dataId, 0, new TextEncoder().encode("ready")));
    });
    const session = await fake.open();
    try {
      const duplex: Duplex = await session.openStream(80, signal());
      const writer = duplex.writable.getWriter();
      const TOTAL = 4 * MiB;
      let written = false;
      const writing = writer.write(pattern(0, TOTAL)).then(() => written = true);
      const received = () => request.received.reduce((sum, c) => sum + c.length, 0);
      // 64 KiB: the default stream window (§2.6.8), never opened yet.
      assertEquals(await settled(received, 400, 3_000), 64 * 1024);
      assert(!written, "the write finished although the window is closed");
      request.send(controlFrame(WINDOW_UPDATE, 0, windowUpdatePayload(request.dataId, TOTAL)));
      request.send(controlFrame(WINDOW_UPDATE, 0, windowUpdatePayload(0, TOTAL)));
      await writing;
      assertEquals(await settled(received, 200, 5_000), TOTAL);
      const all = new Uint8Array(TOTAL);
      let offset = 0;
      for (const chunk of request.received) {
        all.set(chunk, offset);
        offset += chunk.length;
      }
      assert(all.every((b, i) => b === patternByte(i)), "the bytes arrived altered");
    } finally {
      session.close();
    }
  },
});

Deno.test({
  name:
    "spdy: over TLS, a pod streaming into a connection the app does not read stalls at the kernel instead of filling memory (simulated kubelet, https); reading resumes it byte-exact",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    // HTTPS, dialled as the dialer does (the kubeconfig's CA onto Deno's TLS): a node:tls socket
    // keeps reading from the kernel after pause(), so the bytes the session refuses would pile
    // up inside it (hundreds of MiB) instead of stopping the pod.
    await using sim = await startSimCluster({ fixture: DEMO_FIXTURE });
    const access = ApiAccess.fromText(sim.kubeconfig());
    const session = await PortForwardSession.open(
      `${sim.url.replace(/^http/, "ws")}/api/v1/namespaces/demo/pods/echo-5c6b-m9t2z/portforward`,
      await apiRequestOptions(access, { handshakeTimeoutMs: 10_000 }),
    );
    try {
      const TOTAL = 128 * MiB;
      const memoryBefore = isolateMemory();
      const duplex = await session.openStream(7007, signal());
      const writer = duplex.writable.getWriter();
      let written = 0;
      // The echo pod sends back as fast as it is written to: a pod streaming into the app.
      const writing = (async () => {
        for (let offset = 0; offset < TOTAL; offset += MiB) {
          await writer.write(pattern(offset, MiB));
          written = offset + MiB;
        }
        await writer.close();
      })();
      writing.catch(() => {}); // awaited below; a failed assertion must not leave it unhandled
      await settled(() => written);
      const buffered = session.bufferedBytes;
      const memoryGrowth = isolateMemory() - memoryBefore;
      console.log(
        `unread echo over TLS: written ${(written / MiB).toFixed(0)} MiB, session holds ${
          (buffered / MiB).toFixed(2)
        } MiB, JS memory +${(memoryGrowth / MiB).toFixed(0)} MiB`,
      );
      assert(buffered <= 2 * MiB, `the session holds ${buffered} unread bytes`);
      assert(written < TOTAL / 2, `${written} bytes went through although nothing was read`);
      assert(memoryGrowth < 100 * MiB, `JS memory grew by ${(memoryGrowth / MiB).toFixed(0)} MiB`);
      assertEquals(await readPattern(duplex.readable), TOTAL);
      await writing;
    } finally {
      session.close();
    }
  },
});
