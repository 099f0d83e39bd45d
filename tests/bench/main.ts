/**
 * `deno task bench`: runs every area's benchmark module and prints its figures, with ratios to
 * the baselines measured in the same run. `deno task bench stack dns` runs only those areas.
 * Each area module exports `run(): Promise<BenchResult[]>`.
 */
import type { BenchResult } from "./types.ts";

const AREAS = ["tun", "tier", "portforward", "dns", "proxy", "plugins", "startup"] as const;

function format(result: BenchResult): string {
  const value = `${round(result.value)} ${result.unit}`;
  if (!result.baseline) return `  ${result.name.padEnd(60)} ${value}`;
  const ratio = result.baseline.value === 0 ? "n/a" : round(result.value / result.baseline.value);
  return `  ${result.name.padEnd(60)} ${value}  (${ratio}× ${result.baseline.name}: ${
    round(result.baseline.value)
  } ${result.unit})`;
}

function round(n: number): string {
  if (Math.abs(n) >= 100) return n.toFixed(0);
  if (Math.abs(n) >= 10) return n.toFixed(1);
  return n.toFixed(2);
}

async function exists(url: URL): Promise<boolean> {
  try {
    await Deno.stat(url);
    return true;
  } catch {
    return false;
  }
}

const wanted = Deno.args.length > 0 ? Deno.args : [...AREAS];
let failed = false;
console.log(
  `k8stun benchmarks — ${Deno.build.os}-${Deno.build.arch}, ${navigator.hardwareConcurrency} cores, deno ${Deno.version.deno}`,
);
for (const area of wanted) {
  const url = new URL(`./${area}.ts`, import.meta.url);
  if (!(await exists(url))) {
    console.log(`\n${area}: no benchmark module`);
    continue;
  }
  console.log(`\n${area}:`);
  try {
    const module = await import(url.href) as { run(): Promise<BenchResult[]> };
    for (const result of await module.run()) {
      console.log(format(result));
      if (result.note) console.log(`  ${"".padEnd(60)} ${result.note}`);
    }
  } catch (error) {
    failed = true;
    console.log(`  failed: ${error instanceof Error ? error.stack ?? error.message : error}`);
  }
}
if (failed) Deno.exitCode = 1;
