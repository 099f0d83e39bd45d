/**
 * `k8stun plugins bundle`: turns a multi-file plugin into the one-file form — a JavaScript module
 * whose relative imports are already replaced by `data:` URLs, which loads with any k8stun (the
 * compiled binary included) from any directory.
 */
import { linkPlugin } from "./link.ts";

const DATA_PREFIX = "data:application/javascript;base64,";

/** Bundles the plugin at `entry`; returns the module text. */
export async function bundlePlugin(entry: string): Promise<string> {
  const linked = await linkPlugin(entry);
  const code = new TextDecoder().decode(
    Uint8Array.from(atob(linked.url.slice(DATA_PREFIX.length)), (c) => c.charCodeAt(0)),
  );
  const header = `// k8stun plugin bundle of ${entry} (${linked.files.length} file${
    linked.files.length === 1 ? "" : "s"
  }): ${linked.files.map((f) => f.slice(f.lastIndexOf("/") + 1)).join(", ")}\n`;
  return header + code;
}
