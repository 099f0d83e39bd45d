/**
 * Where the benchmark baselines built by build_bench_tools.sh are: client-go's port-forward,
 * tun2socks and the rewriting SOCKS5 server.
 */
import { cachedBuild } from "./control_plane.ts";

/** Their directory if built, else undefined (never builds: a benchmark does not run Go). */
export function cachedBenchTools(): Promise<string | undefined> {
  return cachedBuild("build_bench_tools.sh");
}
