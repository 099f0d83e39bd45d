/** The product version, read from deno.json (the one source of truth). */
import config from "../deno.json" with { type: "json" };

/** k8stun's version, e.g. "0.1.0". */
export const VERSION: string = config.version;

/** `k8stun 0.1.0 (deno 2.9.6, v8 …)` for `--version`. */
export function versionLine(): string {
  return `k8stun ${VERSION} (deno ${Deno.version.deno}, v8 ${Deno.version.v8}, ${Deno.build.os}-${Deno.build.arch})`;
}
