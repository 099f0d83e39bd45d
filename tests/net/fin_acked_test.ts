/**
 * The crash behind "packet loop failed: Cannot read properties of undefined (reading 'subarray')"
 * at the end of uploads: once the application acknowledged our FIN (FIN-WAIT-2), `flush` counted
 * the FIN out of the bytes in flight a second time (−1), took one unsent byte at offset −1 of the
 * emptied send buffer and read a block that does not exist. Inside `input` the stack swallowed
 * it (and never acknowledged the data); from `poll` — a "consumed" from the relay for that data
 * marks the connection for settling — it escaped and ended the packet loop.
 */
import { assertEquals } from "../assert.ts";
import { ACK } from "../../core/net/wire/tcp.ts";
import { appSegment, establishedStack, parseOut } from "./packets.ts";

Deno.test("stack: after the app acknowledges our FIN, its data is acknowledged and consuming it throws nothing", () => {
  const t = establishedStack();
  t.stack.send(t.id, new Uint8Array(100).fill(7), 2);
  t.stack.finish(t.id, 2);
  t.stack.poll(2);
  const fin = parseOut(t.sent.at(-1)!);
  const finAcked = (fin.seq + 1) >>> 0;
  t.stack.input(appSegment({ flags: ACK, seq: 1001, ack: finAcked }), 3); // → FIN-WAIT-2
  t.sent.length = 0;
  const upload = new Uint8Array(1000).fill(9);
  t.stack.input(appSegment({ flags: ACK, seq: 1001, ack: finAcked, payload: upload }), 4);
  t.stack.consumed(t.id, upload.length, 5); // the relay wrote it to the dialer
  t.stack.poll(5);
  assertEquals(t.data.get(t.id)?.reduce((n, d) => n + d.length, 0), 1000);
  const ack = parseOut(t.sent.at(-1)!);
  assertEquals([ack.flags, ack.ack, ack.seq, ack.payloadLength], [ACK, 2001, finAcked, 0]);
  assertEquals(t.closed, []);
});
