/**
 * Hosts the lab's stand-in pods (tests/lab/pod_servers.ts) in a process of their own, for
 * benchmarks that compare data planes over the same servers. Usage: loopback_servers.ts
 * SOURCE_BYTES; prints READY once they listen.
 */
const servers = new Worker(new URL("../lab/pod_servers.ts", import.meta.url), { type: "module" });
servers.postMessage({ sourceBytes: Number(Deno.args[0] ?? 100_000_000) });
await new Promise((resolve) => servers.onmessage = resolve);
console.log("READY");
