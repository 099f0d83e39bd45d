/**
 * A minimal SOCKS5 proxy for lab tests (RFC 1928, no authentication, CONNECT only) that sends
 * every destination to the same port on 127.0.0.1, as a bastion in front of the lab's pods would.
 * A refused connect is answered with reply 5. Prints "READY <port>".
 */
const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
console.log(`READY ${(listener.addr as Deno.NetAddr).port}`);

/** Reads exactly `n` bytes, or null at the end of the stream. */
async function take(conn: Deno.Conn, n: number): Promise<Uint8Array | null> {
  const out = new Uint8Array(n);
  for (let have = 0; have < n;) {
    const got = await conn.read(out.subarray(have));
    if (got === null) return null;
    have += got;
  }
  return out;
}

/** Copies `from` to `to` until the end, then half-closes `to`; a failure closes both. */
async function pipe(from: Deno.Conn, to: Deno.TcpConn): Promise<void> {
  const buffer = new Uint8Array(64 * 1024);
  try {
    for (let n = await from.read(buffer); n !== null; n = await from.read(buffer)) {
      for (let at = 0; at < n;) at += await to.write(buffer.subarray(at, n));
    }
    await to.closeWrite();
  } catch {
    for (const conn of [from, to]) {
      try {
        conn.close();
      } catch { /* closed already */ }
    }
  }
}

async function serve(client: Deno.Conn): Promise<void> {
  const greeting = await take(client, 2);
  if (!greeting || !(await take(client, greeting[1]))) return client.close();
  await client.write(new Uint8Array([5, 0]));
  const head = await take(client, 4);
  if (!head) return client.close();
  const skip = head[3] === 1 ? 4 : head[3] === 4 ? 16 : (await take(client, 1))![0];
  await take(client, skip);
  const portBytes = (await take(client, 2))!;
  const port = (portBytes[0] << 8) | portBytes[1];
  let target: Deno.TcpConn;
  try {
    target = await Deno.connect({ hostname: "127.0.0.1", port });
  } catch {
    await client.write(new Uint8Array([5, 5, 0, 1, 0, 0, 0, 0, 0, 0]));
    return client.close();
  }
  await client.write(new Uint8Array([5, 0, 0, 1, 127, 0, 0, 1, portBytes[0], portBytes[1]]));
  await Promise.all([pipe(client, target), pipe(target, client as Deno.TcpConn)]);
  try {
    client.close();
    target.close();
  } catch { /* closed already */ }
}

for await (const conn of listener) serve(conn).catch(() => {});
