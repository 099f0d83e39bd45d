/**
 * How connections through the TUN end, as `/metrics` counts them: a connection the far end resets
 * ends as `reset` — never as `error`, which is kept for failures of k8stun's own path. A client
 * that writes after its server closed gets the server's reset, every time. iperf3's data
 * connections are reset when its server closes them with bytes unread, which depends on timing:
 * they must end as `reset` or `closed`, never `error`.
 */
import { assert, assertEquals } from "../assert.ts";
import { Lab, labUnavailable } from "../lab/lab.ts";

const PLANE = new URL("../lab/tun_plane.ts", import.meta.url).pathname;

/** Accepts on 127.0.0.1:5202 and closes each connection after 300 ms. */
const CLOSER = `
const listener = Deno.listen({ hostname: "127.0.0.1", port: 5202 });
console.log("READY");
for await (const conn of listener) setTimeout(() => conn.close(), 300);
`;
/** Writes to the closer through the TUN, and again once it has closed: the answer is a reset. */
const LATE_WRITER = `
const conn = await Deno.connect({ hostname: "198.18.0.2", port: 5202 });
const bytes = new Uint8Array(1000);
await conn.write(bytes);
await new Promise((r) => setTimeout(r, 1000));
for (let i = 0; i < 5; i++) {
  try {
    await conn.write(bytes);
  } catch (error) {
    console.log("refused", error.name);
    break;
  }
  await new Promise((r) => setTimeout(r, 200));
}
`;

Deno.test({
  name:
    "connection end: connections the far end resets (a server closing with bytes unread, iperf3's data connections) are counted as reset, not as errors",
  ignore: labUnavailable() !== undefined,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using lab = await Lab.create();
    const plane = lab.spawn(Deno.execPath(), ["run", "-A", PLANE, "1500"], {
      env: { K8STUN_LAB_CLOSES: "1" },
    });
    await plane.waitForOutput(/READY/, 30_000);
    await lab.spawn(Deno.execPath(), ["eval", CLOSER]).waitForOutput(/READY/, 30_000);
    const late = await lab.run(Deno.execPath(), ["eval", LATE_WRITER]);
    assertEquals(late.code, 0, late.stderr);
    assert(/^refused/m.test(late.stdout), `the late writes went through: ${late.stdout}`);
    await plane.waitForOutput(/CLOSED 5202 /, 10_000);
    const closer = plane.output.split("\n").filter((l) => l.startsWith("CLOSED 5202"));
    assertEquals(closer.map((l) => l.split(" ")[2]), ["reset"], closer.join("\n"));

    lab.spawn("iperf3", ["-s", "-p", "5201"]);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const run = await lab.run("iperf3", ["-c", "198.18.0.2", "-p", "5201", "-t", "1", "-P", "2"]);
    assertEquals(run.code, 0, run.stdout + run.stderr);
    await plane.waitForOutput(/(CLOSED 5201 .*\n[^]*){3}/, 10_000);
    const ends = plane.output.split("\n").filter((l) => l.startsWith("CLOSED 5201"));
    assert(ends.every((l) => /^CLOSED 5201 (reset|closed)/.test(l)), ends.join("\n"));
  },
});
