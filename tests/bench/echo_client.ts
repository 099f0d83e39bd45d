/**
 * The echo client of `deno task bench tier`, the same program for every path measured: run as
 * `echo_client.ts HOST PORT bulk BYTES [REPEAT]` it writes BYTES while reading them back (a
 * bidirectional echo, checked byte for byte), REPEAT times on new connections, and prints
 * `{"mbps": …}` (payload one way, per second; the median of the repeats);
 * `echo_client.ts HOST PORT connect COUNT` opens COUNT connections one after another, each
 * echoing 16 bytes, and prints `{"p50": …, "p90": …}` in ms (connect to echo received).
 * HOST may be a name: it is resolved once, up front, so the figures are the transport's.
 */
const [hostArg, portArg, mode, countArg, repeatArg] = Deno.args;
const port = Number(portArg);
const count = Number(countArg);
const repeat = Number(repeatArg ?? 1);

async function resolve(host: string): Promise<string> {
  if (/^\d+\.\d+\.\d+\.\d+$/.test(host)) return host;
  const [address] = await Deno.resolveDns(host, "A");
  if (!address) throw new Error(`${host} did not resolve`);
  return address;
}

/** Byte `i` of the stream: a pattern whose shifts and losses a comparison catches. */
const pattern = (i: number) => (i * 31 + (i >>> 11)) & 0xff;

async function bulk(hostname: string, bytes: number): Promise<{ mbps: number }> {
  const conn = await Deno.connect({ hostname, port });
  const chunk = new Uint8Array(64 * 1024);
  const start = performance.now();
  const sending = (async () => {
    for (let sent = 0; sent < bytes;) {
      const n = Math.min(chunk.length, bytes - sent);
      for (let i = 0; i < n; i++) chunk[i] = pattern(sent + i);
      for (let off = 0; off < n;) off += await conn.write(chunk.subarray(off, n));
      sent += n;
    }
    await conn.closeWrite();
  })();
  const buffer = new Uint8Array(256 * 1024);
  let received = 0;
  while (received < bytes) {
    const n = await conn.read(buffer);
    if (n === null) break;
    for (let i = 0; i < n; i++) {
      if (buffer[i] !== pattern(received + i)) {
        throw new Error(`echo differs at byte ${received + i}`);
      }
    }
    received += n;
  }
  await sending;
  const seconds = (performance.now() - start) / 1000;
  conn.close();
  if (received !== bytes) throw new Error(`echo ended after ${received} of ${bytes} bytes`);
  return { mbps: bytes * 8 / seconds / 1e6 };
}

async function connect(hostname: string, n: number): Promise<{ p50: number; p90: number }> {
  const ping = new Uint8Array(16).map((_, i) => pattern(i));
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const start = performance.now();
    const conn = await Deno.connect({ hostname, port });
    conn.setNoDelay(true);
    await conn.write(ping);
    const buffer = new Uint8Array(16);
    for (let got = 0; got < 16;) {
      const read = await conn.read(buffer.subarray(got));
      if (read === null) throw new Error("the echo closed before answering");
      got += read;
    }
    samples.push(performance.now() - start);
    conn.close();
  }
  samples.sort((a, b) => a - b);
  return { p50: samples[Math.floor(n / 2)], p90: samples[Math.floor(n * 0.9)] };
}

const hostname = await resolve(hostArg);
async function bulkRepeated(): Promise<{ mbps: number }> {
  const runs: number[] = [];
  for (let i = 0; i < repeat; i++) runs.push((await bulk(hostname, count)).mbps);
  runs.sort((a, b) => a - b);
  return { mbps: runs[Math.floor(runs.length / 2)] };
}

const result = mode === "bulk" ? await bulkRepeated() : await connect(hostname, count);
console.log(JSON.stringify(result));
