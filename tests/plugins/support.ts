/** Fixtures for plugin tests: a temporary plugin directory and a fake cluster reader. */
import type { ClusterReader } from "../../mod.ts";

/** A temporary directory with the given files; removed on dispose. */
export async function pluginDir(files: Record<string, string>): Promise<
  { path: string } & AsyncDisposable
> {
  const path = await Deno.makeTempDir({ prefix: "k8stun-plugins-" });
  for (const [name, text] of Object.entries(files)) {
    const file = `${path}/${name}`;
    await Deno.mkdir(file.slice(0, file.lastIndexOf("/")), { recursive: true });
    await Deno.writeTextFile(file, text);
  }
  return {
    path,
    async [Symbol.asyncDispose]() {
      await Deno.remove(path, { recursive: true });
    },
  };
}

/** A cluster with the given `namespace/service` names. */
export function fakeCluster(services: string[]): ClusterReader {
  return {
    namespaces: () => [...new Set(services.map((s) => s.split("/")[0]))],
    hasService: (ns, name) => services.includes(`${ns}/${name}`),
    hasPod: () => false,
  };
}

/** Source of an example plugin, read from the repository. */
export function example(name: string): Promise<string> {
  return Deno.readTextFile(new URL(`../../examples/plugins/${name}`, import.meta.url));
}

/** A minimal valid plugin whose setup body is `body`. */
export function pluginSource(name: string, body: string, extra = ""): string {
  return `${extra}
export const plugin = {
  name: "${name}", version: "0.0.1", apiVersion: 1, kinds: ["resolver", "dialer"],
  setup(ctx) { ${body} },
};
`;
}
