/** Clients for the data-plane lab tests, run inside the lab; print one JSON line of results. */
const mode = Deno.args[0];
const vip = "198.18.0.2";

async function echo(size: number, seed: number): Promise<boolean> {
  const conn = await Deno.connect({ hostname: vip, port: 9002 });
  const payload = new Uint8Array(size);
  for (let i = 0; i < size; i++) payload[i] = (i * 31 + seed) & 0xff;
  const writing = (async () => {
    let off = 0;
    while (off < size) off += await conn.write(payload.subarray(off, Math.min(size, off + 65536)));
    await conn.closeWrite();
  })();
  const got = new Uint8Array(size);
  let received = 0;
  const buffer = new Uint8Array(65536);
  while (true) {
    const n = await conn.read(buffer);
    if (n === null) break;
    got.set(buffer.subarray(0, Math.min(n, size - received)), received);
    received += n;
  }
  await writing;
  conn.close();
  return received === size && got.every((b, i) => b === payload[i]);
}

if (mode === "concurrent") {
  const results = await Promise.all(
    Array.from({ length: 500 }, (_, i) => echo(1 + ((i * 7919) % 200_000), i).catch(() => false)),
  );
  console.log(JSON.stringify({ ok: results.filter(Boolean).length }));
} else if (mode === "slow") {
  const conn = await Deno.connect({ hostname: vip, port: 9003 });
  const bytes = 4 * 1024 * 1024;
  const start = Date.now();
  let off = 0;
  const chunk = new Uint8Array(65536);
  while (off < bytes) {
    off += await conn.write(chunk.subarray(0, Math.min(chunk.length, bytes - off)));
  }
  await conn.closeWrite();
  const reply = new Uint8Array(32);
  const n = await conn.read(reply);
  conn.close();
  const [done, drainMs, gapMs] = new TextDecoder().decode(reply.subarray(0, n ?? 0)).split(" ");
  console.log(JSON.stringify({
    done,
    drainMs: Number(drainMs),
    gapMs: Number(gapMs),
    ms: Date.now() - start,
  }));
}

/** How a connection to `port` through the VIP ends: "echoed", "refused", "reset" or the error. */
async function outcome(port: number): Promise<string> {
  let conn: Deno.TcpConn;
  try {
    conn = await Deno.connect({ hostname: vip, port });
  } catch (error) {
    if (error instanceof Deno.errors.ConnectionRefused) return "refused";
    // Answered at once, then reset before connect() returned: the reset is what the app sees.
    return error instanceof Deno.errors.ConnectionReset ? "reset" : String(error);
  }
  try {
    await conn.write(new TextEncoder().encode("ping"));
    const reply = new Uint8Array(4);
    const n = await conn.read(reply);
    return n === 4 ? "echoed" : `read ${n}`;
  } catch (error) {
    return error instanceof Deno.errors.ConnectionReset ? "reset" : String(error);
  } finally {
    conn.close();
  }
}

if (mode === "vanished") {
  // The "pod": an echo server in this process, behind the VIP's port of the same number.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const serving = (async () => {
    for await (const conn of listener) {
      const buffer = new Uint8Array(4);
      const n = await conn.read(buffer).catch(() => null);
      if (n) await conn.write(buffer.subarray(0, n)).catch(() => {});
      conn.close();
    }
  })().catch(() => {});
  const steps = [await outcome(port), await outcome(port)];
  listener.close(); // the pod goes away
  await serving;
  steps.push(await outcome(port), await outcome(port));
  console.log(JSON.stringify({ steps }));
}
