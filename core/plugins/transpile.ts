/**
 * Strips TypeScript from a plugin's source with sucrase, keeping line numbers unchanged so that
 * error positions in the JavaScript are positions in the user's file. Chosen over ts-blank-space
 * (which needs the whole TypeScript compiler loaded, about 9 MB of JavaScript, and rejects enums)
 * and amaro (a WebAssembly build of swc): sucrase is plain JavaScript, loads in milliseconds and
 * handles enums; `deno task bench plugins` prints the measured load time.
 */
import { transform } from "sucrase";

/** A plugin file that does not parse; the message names the file, line and column. */
export class PluginSyntaxError extends Error {
  constructor(
    readonly file: string,
    readonly line: number,
    readonly column: number,
    detail: string,
  ) {
    super(`${file}:${line}:${column}: syntax error: ${detail}`);
    this.name = "PluginSyntaxError";
  }
}

/**
 * Turns TypeScript (or JavaScript) into JavaScript: types, interfaces, `satisfies`, type-only
 * imports and exports disappear; enums become objects; everything else, ES module syntax
 * included, is left as written.
 */
export function stripTypes(source: string, file: string): string {
  const typescript = !file.endsWith(".js") && !file.endsWith(".mjs");
  try {
    return transform(source, {
      transforms: typescript ? ["typescript"] : [],
      disableESTransforms: true,
      filePath: file,
      keepUnusedImports: false,
    }).code;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const position = /\((\d+):(\d+)\)\s*$/.exec(message);
    const detail = message.replace(/^Error transforming [^:]+: /, "").replace(
      /\s*\(\d+:\d+\)\s*$/,
      "",
    );
    throw new PluginSyntaxError(
      file,
      position ? Number(position[1]) : 1,
      position ? Number(position[2]) + 1 : 1,
      detail,
    );
  }
}
