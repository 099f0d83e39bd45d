/**
 * A client that breaks the WebSocket protocol on a port-forward loses its own connection; the
 * simulated API server (which `k8stun demo` runs in the tunnel's process) keeps serving.
 */
import { assertEquals, assertMatch } from "../assert.ts";
import { DEMO_FIXTURE, startSimCluster } from "../../sim/mod.ts";

Deno.test("sim: a port-forward client sending an invalid WebSocket frame is cut off; the server keeps serving", async () => {
  await using sim = await startSimCluster({ fixture: DEMO_FIXTURE, tls: false });
  const { port } = new URL(sim.url);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: Number(port) });
  const request = [
    "GET /api/v1/namespaces/demo/pods/db-0/portforward?ports=5432 HTTP/1.1",
    `Host: 127.0.0.1:${port}`,
    `Authorization: Bearer ${sim.token}`,
    "Connection: Upgrade",
    "Upgrade: websocket",
    "Sec-WebSocket-Version: 13",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Protocol: v4.channel.k8s.io",
    "",
    "",
  ].join("\r\n");
  await conn.write(new TextEncoder().encode(request));
  const buffer = new Uint8Array(4096);
  const n = await conn.read(buffer);
  assertMatch(new TextDecoder().decode(buffer.subarray(0, n ?? 0)), /^HTTP\/1\.1 101 /);
  // RSV2 and RSV3 set, unmasked: invalid from a client (RFC 6455 §5.2).
  await conn.write(new Uint8Array([0x72, 0x02, 0x41, 0x42]));
  // The server closes this connection (a close frame may come first).
  while ((await conn.read(buffer)) !== null) { /* drain until the server hangs up */ }
  conn.close();

  const again = await fetch(`${sim.url}/api/v1/namespaces`, {
    headers: { authorization: `Bearer ${sim.token}` },
  });
  assertEquals(again.status, 200);
  await again.body?.cancel();
});
