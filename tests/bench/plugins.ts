/**
 * Plugin load time through the production path (read → strip types → link → import from a
 * `data:` URL), for the example resolver; baseline: importing the same plugin's JavaScript
 * directly from a `data:` URL (no transpiling, no linking).
 */
import { loadPluginFile } from "../../core/plugins/loader.ts";
import { stripTypes } from "../../core/plugins/transpile.ts";
import type { BenchResult } from "./types.ts";

const cluster = { namespaces: () => [], hasService: () => false, hasPod: () => false };

export async function run(): Promise<BenchResult[]> {
  const source = await Deno.readTextFile(
    new URL("../../examples/plugins/internal-names.ts", import.meta.url),
  );
  const dir = await Deno.makeTempDir({ prefix: "k8stun-bench-plugins-" });
  try {
    const rounds = 200;
    const files: string[] = [];
    for (let i = 0; i < rounds; i++) {
      // A distinct file each round, so no import is served from the module cache.
      const file = `${dir}/p${i}.ts`;
      await Deno.writeTextFile(file, source.replace('"internal-names"', `"internal-names-${i}"`));
      files.push(file);
    }
    const first = performance.now();
    await loadPluginFile(files[0], { cluster });
    const cold = performance.now() - first;
    const start = performance.now();
    for (const file of files.slice(1)) await loadPluginFile(file, { cluster });
    const warm = (performance.now() - start) / (rounds - 1);
    const js = stripTypes(source, "x.ts");
    const baseStart = performance.now();
    for (let i = 0; i < rounds; i++) {
      await import(
        "data:application/javascript;base64," + btoa(js.replace("internal-names", `base-${i}`))
      );
    }
    const baseline = (performance.now() - baseStart) / rounds;
    return [
      { name: "plugin load, first in the process", value: cold, unit: "ms" },
      {
        name: "plugin load, typical (transpile + link + import + setup)",
        value: warm,
        unit: "ms",
        baseline: { name: "plain data: import", value: baseline },
      },
    ];
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
