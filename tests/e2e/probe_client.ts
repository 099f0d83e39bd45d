/**
 * A TCP client for lab tests that must tell a reset from a clean end: connects to HOST PORT,
 * sends BYTES bytes, reads until the end and prints `{"outcome","received","ms"}` as JSON, where
 * outcome is `eof` (clean FIN), `reset` (RST), `refused` (ECONNREFUSED) or `timeout` (none
 * within 10 s).
 */
const [host, port, bytes = "0"] = Deno.args;
const started = performance.now();
let received = 0;
let outcome = "eof";
const deadline = setTimeout(() => {
  console.log(JSON.stringify({ outcome: "timeout", received, ms: performance.now() - started }));
  Deno.exit(0);
}, 10_000);
try {
  const conn = await Deno.connect({ hostname: host, port: Number(port) });
  const sending = (async () => {
    const chunk = new Uint8Array(Number(bytes));
    for (let off = 0; off < chunk.length;) off += await conn.write(chunk.subarray(off));
  })().catch(() => {});
  const buffer = new Uint8Array(64 * 1024);
  for (;;) {
    const n = await conn.read(buffer);
    if (n === null) break;
    received += n;
  }
  await sending;
  conn.close();
} catch (error) {
  outcome = error instanceof Deno.errors.ConnectionReset
    ? "reset"
    : error instanceof Deno.errors.ConnectionRefused
    ? "refused"
    : `error: ${(error as Error).message}`;
}
clearTimeout(deadline);
console.log(JSON.stringify({ outcome, received, ms: Math.round(performance.now() - started) }));
