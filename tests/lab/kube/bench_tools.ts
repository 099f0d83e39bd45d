/**
 * Where the benchmark baselines built by build_bench_tools.sh are: client-go's port-forward,
 * tun2socks and the rewriting SOCKS5 server.
 */
import { fileURLToPath as fromFileUrl } from "node:url";

/** Their directory if built, else undefined (never builds: a benchmark does not run Go). */
export async function cachedBenchTools(): Promise<string | undefined> {
  const script = fromFileUrl(new URL("./build_bench_tools.sh", import.meta.url));
  const out = await new Deno.Command("sh", {
    args: [script],
    env: { K8STUN_LAB_NO_BUILD: "1" },
    stdout: "piped",
    stderr: "null",
  }).output();
  return out.success ? new TextDecoder().decode(out.stdout).trim() : undefined;
}
