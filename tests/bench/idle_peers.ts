/**
 * The idle-connection benchmark's two ends, run inside the lab: `server PORT` accepts and holds
 * connections without reading (no per-connection buffers), `client HOST PORT N` opens N
 * connections, prints READY when all are established, and holds them until killed.
 */
const [role, ...args] = Deno.args;
const held: Deno.Conn[] = [];
if (role === "server") {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: Number(args[0]) });
  console.log("READY");
  for await (const conn of listener) held.push(conn);
} else {
  const [host, port, count] = args;
  // Batches below the stack's half-open limit per source (128): a bigger burst of SYNs from one
  // address is a flood to it, and it sheds handshakes.
  const BATCH = 100;
  for (let i = 0; i < Number(count); i += BATCH) {
    const batch = Array.from(
      { length: Math.min(BATCH, Number(count) - i) },
      () => Deno.connect({ hostname: host, port: Number(port) }),
    );
    held.push(...await Promise.all(batch));
  }
  console.log("READY");
  await new Promise(() => {});
}
