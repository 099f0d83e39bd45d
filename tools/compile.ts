/**
 * `deno task compile`: builds the single-file k8stun binary into `dist/k8stun-<os>-<arch>`.
 * `deno compile` needs Deno's `denort` runtime for the target, which build machines without
 * internet cannot download: point `DENORT_BIN` at it (one binary per target; pass
 * `--target <triple>` to cross-compile with the matching denort). The packet-loop Worker and the
 * device modules it imports by URL are embedded with `--include`, since a compiled binary loads
 * only embedded modules.
 */
const TARGETS: Record<string, string> = {
  "x86_64-unknown-linux-gnu": "linux-x86_64",
  "aarch64-unknown-linux-gnu": "linux-aarch64",
  "x86_64-apple-darwin": "darwin-x86_64",
  "aarch64-apple-darwin": "darwin-aarch64",
};

const targetFlag = Deno.args.indexOf("--target");
const target = targetFlag >= 0 ? Deno.args[targetFlag + 1] : Deno.build.target;
const suffix = TARGETS[target];
if (!suffix) {
  console.error(
    `k8stun compile: unsupported target ${target} (supported: ${Object.keys(TARGETS).join(", ")})`,
  );
  Deno.exit(2);
}
const denort = Deno.env.get("DENORT_BIN");
if (!denort) {
  console.error(
    "k8stun compile: DENORT_BIN is not set — deno compile needs the denort runtime for " +
      `${target}, which cannot be downloaded here; set DENORT_BIN=/path/to/denort and retry`,
  );
  Deno.exit(1);
}
const root = new URL("..", import.meta.url).pathname;
const output = `${root}dist/k8stun-${suffix}`;
await Deno.mkdir(`${root}dist`, { recursive: true });
const args = [
  "compile",
  "--allow-all",
  "--target",
  target,
  "--include",
  `${root}core/net/packet_loop/worker.ts`,
  // The device's end the loop imports by URL (core/net/device/tun_device.ts PacketIoSpec).
  "--include",
  `${root}ffi/linux/packet_io.ts`,
  "--include",
  `${root}ffi/darwin/packet_io.ts`,
  "--output",
  output,
  `${root}cli/main.ts`,
];
const status = await new Deno.Command(Deno.execPath(), {
  args,
  env: { DENORT_BIN: denort },
  stdout: "inherit",
  stderr: "inherit",
}).spawn().status;
if (!status.success) Deno.exit(status.code);
console.log(`k8stun compile: wrote ${output}`);
