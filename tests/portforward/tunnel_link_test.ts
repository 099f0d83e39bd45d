/**
 * The WebSocket tunnel's link against a hand-written server on loopback: the upgrade's checks,
 * and the frames the link answers (ping, close, a frame a client must refuse).
 */
import { assert, assertEquals, assertRejects } from "../assert.ts";
import { openTunnelLink, SPDY_TUNNEL_PROTOCOL } from "../../plugins/portforward/session_link.ts";
import { UpgradeRefused } from "../../plugins/portforward/spdy_upgrade.ts";
import { webSocketAccept } from "../../core/k8s/websocket_upgrade.ts";
import { DialError } from "../../mod.ts";
import { SEND_HIGH_WATER } from "../../plugins/portforward/limits.ts";
import { openV4Stream } from "../../plugins/portforward/v4_stream.ts";
import { concatBytes } from "../../core/stream/concat_bytes.ts";

/** What the server answers the upgrade with, given the request's key. */
type Answer = (key: string) => string;

const switched: Answer = (key) =>
  "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
  `Sec-WebSocket-Accept: ${webSocketAccept(key)}\r\n` +
  `Sec-WebSocket-Protocol: ${SPDY_TUNNEL_PROTOCOL}\r\n\r\n`;

/** Reads from `conn` until `done(bytes)` says the bytes so far are enough. */
async function readUntil(
  conn: Deno.Conn,
  have: Uint8Array,
  done: (bytes: Uint8Array) => boolean,
): Promise<Uint8Array> {
  const buffer = new Uint8Array(64 * 1024);
  while (!done(have)) {
    const n = await conn.read(buffer);
    if (n === null) break;
    const joined = new Uint8Array(have.length + n);
    joined.set(have);
    joined.set(buffer.subarray(0, n), have.length);
    have = joined;
  }
  return have;
}

/** One client frame (masked, short payloads only), unmasked; undefined if incomplete. */
function clientFrame(bytes: Uint8Array) {
  if (bytes.length < 6) return undefined;
  assert(bytes[1] & 0x80, "client frames are masked (RFC 6455 §5.3)");
  const length = bytes[1] & 0x7f;
  assert(length < 126, "short frames only here");
  if (bytes.length < 6 + length) return undefined;
  const key = bytes.subarray(2, 6);
  const payload = bytes.slice(6, 6 + length).map((b, i) => b ^ key[i & 3]);
  return { opcode: bytes[0] & 0x0f, fin: (bytes[0] & 0x80) !== 0, payload, size: 6 + length };
}

/** A server frame (unmasked, RFC 6455 §5.1), short payloads only. */
const unmasked = (opcode: number, payload: Uint8Array) =>
  Uint8Array.of(0x80 | opcode, payload.length, ...payload);

/** The 101 of a v4 channel WebSocket (one connection per port: plugins/portforward/v4_stream.ts). */
const switchedV4: Answer = (key) =>
  "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
  `Sec-WebSocket-Accept: ${webSocketAccept(key)}\r\n` +
  "Sec-WebSocket-Protocol: v4.channel.k8s.io\r\n\r\n";

/**
 * Takes the one connection `listener` gets (and closes it), reads the upgrade request and answers
 * it with `answer`; returns the connection and the request's text.
 */
async function acceptUpgrade(listener: Deno.Listener, answer: Answer) {
  const conn = await listener.accept();
  listener.close();
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  const head = await readUntil(conn, new Uint8Array(0), (b) => text(b).includes("\r\n\r\n"));
  const request = text(head);
  const key = /^sec-websocket-key: *(\S+)/im.exec(request)?.[1] ?? "";
  await conn.write(new TextEncoder().encode(answer(key)));
  return { conn, request };
}

/** Sends `count` unmasked pings of 125 bytes, a thousand per write. */
async function floodPings(conn: Deno.Conn, count: number): Promise<void> {
  const ping = unmasked(0x9, new Uint8Array(125).fill(0x70));
  const batch = new Uint8Array(ping.length * 1000);
  for (let i = 0; i < 1000; i++) batch.set(ping, i * ping.length);
  for (let sent = 0; sent < count; sent += 1000) {
    for (let at = 0; at < batch.length;) at += await conn.write(batch.subarray(at));
  }
}

/** The kubelet's port prefixes on the data and error channels (port 80, little-endian). */
async function writePortPrefixes(conn: Deno.Conn): Promise<void> {
  await conn.write(unmasked(0x2, Uint8Array.of(0, 80, 0)));
  await conn.write(unmasked(0x2, Uint8Array.of(1, 80, 0)));
}

/**
 * A server that upgrades one connection with `answer`, sends `frames` and hands back the request
 * and the client frames it read until the client closed.
 */
function tunnelServer(answer: Answer, frames: Uint8Array[] = []) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const served = (async () => {
    const { conn, request } = await acceptUpgrade(listener, answer);
    try {
      for (const frame of frames) await conn.write(frame);
      const received: { opcode: number; fin: boolean; payload: Uint8Array }[] = [];
      let rest = await readUntil(conn, new Uint8Array(0), () => false);
      for (let frame = clientFrame(rest); frame; frame = clientFrame(rest)) {
        received.push(frame);
        rest = rest.subarray(frame.size);
      }
      return { request, received };
    } finally {
      conn.close();
    }
  })();
  return { url: `ws://127.0.0.1:${(listener.addr as Deno.NetAddr).port}/portforward`, served };
}

Deno.test({
  name:
    "tunnel link: the upgrade is a WebSocket GET for the SPDY subprotocol; pings are answered with masked pongs in order, and the server's close is answered and ends the link",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const server = tunnelServer(switched, [
      unmasked(0x2, Uint8Array.of(1, 2, 3)),
      unmasked(0x9, new TextEncoder().encode("are you there")),
      unmasked(0x8, Uint8Array.of(0x03, 0xe8)),
    ]);
    const link = await openTunnelLink(server.url, { headers: { Authorization: "Bearer t" } });
    const bytes: number[] = [];
    let heard = 0;
    const closed = new Promise<void>((resolve) =>
      link.listen({ bytes: (b) => bytes.push(...b), closed: resolve, heard: () => heard++ })
    );
    await closed;
    const { request, received } = await server.served;
    assert(request.startsWith("GET /portforward HTTP/1.1"), request);
    assert(/^upgrade: websocket\r$/im.test(request), request);
    assert(/^sec-websocket-version: 13\r$/im.test(request), request);
    assert(/^sec-websocket-protocol: SPDY\/3\.1\+portforward\.k8s\.io\r$/im.test(request));
    assert(/^authorization: Bearer t\r$/im.test(request), "the kubeconfig's credentials go along");
    assertEquals(bytes, [1, 2, 3]);
    assertEquals(heard, 3, "every frame is heard");
    assertEquals(received.map((f) => f.opcode), [0xa, 0x8], "a pong, then the close reply");
    assertEquals(new TextDecoder().decode(received[0].payload), "are you there");
    assertEquals([...received[1].payload], [0x03, 0xe8], "the close echoes the status code");
    assert(!link.open);
  },
});

Deno.test({
  name:
    "tunnel link: a masked frame from the server closes the link with 1002 (protocol error) and hands nothing on",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const server = tunnelServer(switched, [Uint8Array.of(0x82, 0x81, 0, 0, 0, 0, 7)]);
    const link = await openTunnelLink(server.url, {});
    const bytes: number[] = [];
    await new Promise<void>((resolve) =>
      link.listen({ bytes: (b) => bytes.push(...b), closed: resolve, heard: () => {} })
    );
    const { received } = await server.served;
    assertEquals(bytes, []);
    assertEquals(received.map((f) => [f.opcode, ...f.payload]), [[0x8, 0x03, 0xea]]);
  },
});

Deno.test({
  name:
    "tunnel link: a 101 without the SPDY subprotocol is a refusal (the dialer falls back); a wrong Sec-WebSocket-Accept is an error",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const noProtocol = tunnelServer((key) =>
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
      `Sec-WebSocket-Accept: ${webSocketAccept(key)}\r\n\r\n`
    );
    await assertRejects(() => openTunnelLink(noProtocol.url, {}), UpgradeRefused);
    await noProtocol.served;
    const badAccept = tunnelServer(() =>
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
      `Sec-WebSocket-Accept: ${webSocketAccept("another key")}\r\n` +
      `Sec-WebSocket-Protocol: ${SPDY_TUNNEL_PROTOCOL}\r\n\r\n`
    );
    const error = await openTunnelLink(badAccept.url, {}).catch((e) => e);
    assert(error instanceof DialError && !(error instanceof UpgradeRefused), String(error));
    assert(/Sec-WebSocket-Accept/.test(error.message), error.message);
    await badAccept.served;
    const notFound = tunnelServer(() =>
      "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    );
    await assertRejects(() => openTunnelLink(notFound.url, {}), UpgradeRefused);
    await notFound.served;
  },
});

Deno.test({
  name:
    "tunnel link: a server that floods pings and reads nothing gets pongs only up to the send high-water mark",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const PINGS = 200_000; // 125-byte pings: 25 MB, far past the kernel's buffers and the mark
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const flooded = Promise.withResolvers<void>();
    const release = Promise.withResolvers<void>();
    const served = (async () => {
      const { conn } = await acceptUpgrade(listener, switched);
      await floodPings(conn, PINGS);
      flooded.resolve();
      await release.promise; // read nothing until the client's side was measured
      conn.close();
    })();
    const link = await openTunnelLink(
      `ws://127.0.0.1:${(listener.addr as Deno.NetAddr).port}/`,
      {},
    );
    let heard = 0;
    link.listen({ bytes: () => {}, closed: () => {}, heard: () => heard++ });
    await flooded.promise;
    while (heard < PINGS) await new Promise((r) => setTimeout(r, 10));
    const held = link.bufferedAmount;
    release.resolve();
    await served;
    link.terminate();
    assert(
      held <= SEND_HIGH_WATER + 256,
      `${held} bytes of pongs held for a server that reads none`,
    );
    assert(held >= SEND_HIGH_WATER / 2, `${held}: pongs were sent while it could take them`);
  },
});

Deno.test({
  name:
    "v4 stream: a server that floods pings and reads nothing gets pongs only up to the send high-water mark",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const PINGS = 300_000; // 125-byte pings: 38 MB, far past the kernel's buffers and the mark
    const PONG_BYTES = 6 + 125; // a masked pong echoing a 125-byte ping
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const flooded = Promise.withResolvers<void>();
    const release = Promise.withResolvers<void>();
    const served = (async () => {
      const { conn } = await acceptUpgrade(listener, switchedV4);
      await writePortPrefixes(conn);
      await floodPings(conn, PINGS);
      flooded.resolve();
      await release.promise;
      // Now read what the client answered: everything it queued arrives within a second.
      const chunks: Uint8Array[] = [];
      const buffer = new Uint8Array(256 * 1024);
      const stop = setTimeout(() => conn.close(), 1000);
      try {
        while (true) {
          const n = await conn.read(buffer);
          if (n === null) break;
          chunks.push(buffer.slice(0, n));
        }
      } catch {
        // closed by the timer
      }
      clearTimeout(stop);
      let pongs = 0;
      let rest = concatBytes(chunks);
      for (let frame = clientFrame(rest); frame; frame = clientFrame(rest)) {
        if (frame.opcode === 0xa && frame.size === PONG_BYTES) pongs++;
        rest = rest.subarray(frame.size);
      }
      return pongs;
    })();
    const abort = new AbortController();
    const url = `ws://127.0.0.1:${(listener.addr as Deno.NetAddr).port}/portforward`;
    const stream = await openV4Stream(url, {}, abort.signal);
    await flooded.promise;
    await new Promise((r) => setTimeout(r, 1000)); // the client reads the last pings
    release.resolve();
    const pongs = await served;
    abort.abort();
    await stream.readable.cancel().catch(() => {});
    console.log(`${pongs} pongs answered ${PINGS} pings`);
    assert(pongs > 0, "pings are answered");
    assert(pongs < PINGS / 2, `${pongs} pongs: answered past what a non-reading server takes`);
  },
});

Deno.test({
  name:
    "v4 stream: an app that stops reading (cancels) while the pod still sends, then the server's close, raise nothing",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const cancelled = Promise.withResolvers<void>();
    const served = (async () => {
      const { conn } = await acceptUpgrade(listener, switchedV4);
      await writePortPrefixes(conn);
      await conn.write(unmasked(0x2, Uint8Array.of(0, 1, 2, 3)));
      await cancelled.promise;
      // After the app let go: more data and the server's close, as a pod that keeps talking.
      await conn.write(unmasked(0x2, Uint8Array.of(0, 4, 5, 6))).catch(() => {});
      await conn.write(unmasked(0x8, Uint8Array.of(0x03, 0xe8))).catch(() => {});
      await new Promise((r) => setTimeout(r, 200));
      conn.close();
    })();
    const url = `ws://127.0.0.1:${(listener.addr as Deno.NetAddr).port}/portforward`;
    const stream = await openV4Stream(url, {}, new AbortController().signal);
    const reader = stream.readable.getReader();
    assertEquals([...(await reader.read()).value!], [1, 2, 3]);
    await reader.cancel();
    cancelled.resolve();
    await served;
    await new Promise((r) => setTimeout(r, 300)); // the socket's last events run (and must not throw)
  },
});
