/**
 * Small writes over TLS leave at once (docs/platform.md §3.7): the dialer's connections have
 * TCP_NODELAY, what one turn writes leaves as one TLS record, and a TLS listener's accepted
 * connections inherit TCP_NODELAY from the listening socket.
 */
import { Buffer } from "node:buffer";
import { assert, assertEquals } from "../assert.ts";
import { denoTlsConnector, DenoTlsSocket } from "../../core/k8s/deno_tls_socket.ts";
import { noDelayOf, setListenerNoDelay, TcpState } from "../../ffi/linux/socket_nodelay.ts";
import { generateSimTls } from "../../sim/tls.ts";

const linux = Deno.build.os === "linux";

async function tlsListener() {
  const tls = await generateSimTls();
  const listener = Deno.listenTls({
    hostname: "127.0.0.1",
    port: 0,
    cert: tls.certPem,
    key: tls.keyPem,
  });
  return { tls, listener, port: (listener.addr as Deno.NetAddr).port };
}

/** A DenoTlsSocket connected to a fresh listener, and the listener's end; closed when disposed. */
async function connectedPair() {
  const { tls, listener, port } = await tlsListener();
  const socket = new DenoTlsSocket(() =>
    Deno.connectTls({ hostname: "localhost", port, caCerts: [tls.caPem] })
  );
  const connected = new Promise((resolve) => socket.once("secureConnect", resolve));
  const accepted = await listener.accept();
  await Promise.all([accepted.handshake(), connected]);
  return { socket, accepted, [Symbol.dispose]: () => listener.close() };
}

Deno.test({
  name: "tls: the dialer's connection has TCP_NODELAY, and writes of one turn arrive as one record",
  ignore: !linux,
  async fn() {
    const { tls, listener, port } = await tlsListener();
    try {
      const connect = denoTlsConnector({ caCerts: [tls.caPem] });
      const socket = connect({ host: "localhost", port });
      const connected = new Promise((resolve) => socket.once("secureConnect", resolve));
      const accepted = await listener.accept();
      await Promise.all([accepted.handshake(), connected]);
      // The client's end of the connection: the socket with this process's other port.
      const clientPort = (accepted.remoteAddr as Deno.NetAddr).port;
      assertEquals(await noDelayOf(clientPort, TcpState.ESTABLISHED), [true]);

      socket.write(new TextEncoder().encode("first "));
      socket.write(new TextEncoder().encode("second"));
      // A TLS read returns one record: both writes are in it when they left together.
      const buffer = new Uint8Array(1024);
      const n = await accepted.read(buffer);
      assertEquals(new TextDecoder().decode(buffer.subarray(0, n!)), "first second");
      socket.destroy();
      accepted.close();
    } finally {
      listener.close();
    }
  },
});

Deno.test({
  name: "tls: a listening socket given TCP_NODELAY passes it to the connections it accepts",
  ignore: !linux,
  async fn() {
    const { tls, listener, port } = await tlsListener();
    try {
      assertEquals(await noDelayOf(port, TcpState.LISTEN), [false]);
      assert(await setListenerNoDelay(port), "the listening socket was found");
      assertEquals(await noDelayOf(port, TcpState.LISTEN), [true]);
      const client = await Deno.connectTls({ hostname: "localhost", port, caCerts: [tls.caPem] });
      const accepted = await listener.accept();
      await Promise.all([client.handshake(), accepted.handshake()]);
      // This process holds both ends; the accepted one has the listener's local port.
      assertEquals(await noDelayOf(port, TcpState.ESTABLISHED), [true]);
      client.close();
      accepted.close();
    } finally {
      listener.close();
    }
  },
});

Deno.test("tls: destroy() right after a write still delivers the write", async () => {
  using pair = await connectedPair();
  const { socket, accepted } = pair;
  socket.write(new TextEncoder().encode("last words"));
  socket.destroy();
  const received = new Uint8Array(await new Response(accepted.readable).arrayBuffer());
  assertEquals(new TextDecoder().decode(received), "last words");
});

Deno.test("tls: a writer may reuse its buffer once told a write is done; the peer gets what was written", async () => {
  using pair = await connectedPair();
  const { socket, accepted } = pair;
  // One reused buffer, as the tunnel's frame writer has: filled, written, and refilled and
  // written again from the write's callback.
  const buffer = Buffer.alloc(4);
  const texts = ["aaaa", "bbbb", "cccc"];
  await new Promise<void>((resolve) => {
    const next = () => {
      const text = texts.shift();
      if (text === undefined) return resolve();
      buffer.write(text);
      socket.write(buffer, next);
    };
    next();
  });
  socket.end();
  const received = new Uint8Array(await new Response(accepted.readable).arrayBuffer());
  assertEquals(new TextDecoder().decode(received), "aaaabbbbcccc");
});
