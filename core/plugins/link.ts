/**
 * Links a plugin's files into one importable `data:` URL module — the only loading path, used the
 * same way under `deno run` and in the compiled binary, which cannot `import()` files that were not
 * embedded at compile time (denoland/deno#18327) but does import `data:` URLs. Each file is
 * stripped of types, and its relative imports are replaced by the `data:` URLs of the files they
 * name, depth first, so a multi-file plugin needs no module resolution at run time. Anything else
 * a plugin imports at run time (npm:, jsr:, https:, bare names, k8stun's own modules) cannot be
 * satisfied in the compiled binary and is refused with the file, line and the fix.
 *
 * Files are read by their real path (symlinks resolved), and a relative import must stay inside
 * the plugin's folder — the folder of the entry file's real path — so a plugin cannot pull in
 * code from elsewhere on the machine (`../../other/file.ts`, or a symlink pointing out).
 */
import { dirname, resolve } from "node:path";
import { init as initLexer, parse as lexImports } from "es-module-lexer";
import { stripTypes } from "./transpile.ts";

/** A plugin import that cannot be satisfied at run time. */
export class PluginImportError extends Error {
  constructor(
    readonly file: string,
    readonly line: number,
    readonly specifier: string,
    fix: string,
  ) {
    super(`${file}:${line}: cannot import "${specifier}" at run time — ${fix}`);
    this.name = "PluginImportError";
  }
}

/** A linked plugin: its entry URL and a way to map stack traces back to its files. */
export interface LinkedPlugin {
  /** The `data:` URL of the entry module. */
  url: string;
  /** Every file that went in, entry first. */
  files: string[];
  /** Rewrites `data:` URL positions in a stack trace or message to `file:line:column`. */
  describe(text: string): string;
}

/** How a plugin's files are read. */
export interface LinkOptions {
  /** Reads a file's text (default `Deno.readTextFile`). */
  readText?: (path: string) => Promise<string>;
  /** Resolves symlinks (default `Deno.realPath`). */
  realPath?: (path: string) => Promise<string>;
  /** Vets each file, by real path, before it is read (e.g. its owner and mode, as root). */
  checkFile?: (path: string) => Promise<void>;
}

const DATA_PREFIX = "data:application/javascript;base64,";

/** Links the plugin whose entry file is `entry` (an absolute path). */
export async function linkPlugin(entry: string, options: LinkOptions = {}): Promise<LinkedPlugin> {
  const readText = options.readText ?? Deno.readTextFile;
  const realPath = options.realPath ?? Deno.realPath;
  await initLexer;
  const urls = new Map<string, string>();
  const inProgress: string[] = [];
  const real = (path: string) =>
    realPath(path).catch((error) => {
      throw new Error(`${path}: cannot read plugin file: ${error.message}`);
    });
  const realEntry = await real(entry);
  const folder = dirname(realEntry);

  async function link(file: string): Promise<string> {
    const done = urls.get(file);
    if (done) return done;
    if (inProgress.includes(file)) {
      const cycle = [...inProgress.slice(inProgress.indexOf(file)), file].join(" → ");
      throw new PluginImportError(
        inProgress.at(-1)!,
        1,
        file,
        `import cycle (${cycle}); plugin files must import each other without cycles`,
      );
    }
    inProgress.push(file);
    await options.checkFile?.(file);
    const source = await readText(file).catch((error) => {
      throw new Error(`${file}: cannot read plugin file: ${error.message}`);
    });
    const code = stripTypes(source, file);
    let output = "";
    let cursor = 0;
    const [imports] = lexImports(code);
    for (const entry of imports) {
      const dynamic = entry.d > -1;
      const specifier = entry.n;
      const line = code.slice(0, entry.s).split("\n").length;
      if (specifier === undefined) {
        if (dynamic) {
          throw new PluginImportError(
            file,
            line,
            code.slice(entry.s, entry.e),
            "import() with a computed specifier cannot be resolved in the k8stun binary",
          );
        }
        continue;
      }
      if (specifier.startsWith("data:")) continue;
      if (!isRelative(specifier)) throw importError(file, line, specifier);
      const path = resolve(dirname(file), specifier);
      const target = await realPath(path).catch((error) => {
        throw new PluginImportError(file, line, specifier, `cannot read ${path}: ${error.message}`);
      });
      if (!target.startsWith(`${folder}/`)) {
        throw new PluginImportError(
          file,
          line,
          specifier,
          `it resolves to ${target}, outside the plugin's folder ${folder}; a plugin may import ` +
            "only files inside its own folder (copy the file in, or bundle the plugin)",
        );
      }
      const url = await link(target);
      const [start, end] = dynamic ? [entry.s + 1, entry.e - 1] : [entry.s, entry.e];
      output += code.slice(cursor, start) + url;
      cursor = end;
    }
    output += code.slice(cursor);
    output += `\n//# sourceURL=${file}\n`;
    const url = DATA_PREFIX + base64(output);
    urls.set(file, url);
    inProgress.pop();
    return url;
  }

  const url = await link(realEntry);
  const files = [realEntry, ...[...urls.keys()].filter((f) => f !== realEntry)];
  const byTail = new Map([...urls].map(([file, u]) => [u.slice(-20), file]));
  return {
    url,
    files,
    describe(text: string): string {
      // Stack frames show data: URLs abbreviated as `data:…base64,<head>......<tail>:L:C`; the
      // tail identifies the module because it encodes that module's sourceURL comment.
      return text.replace(
        /data:application\/javascript;base64,[A-Za-z0-9+/=]*(?:\.\.\.\.\.\.)?([A-Za-z0-9+/=]{1,20})(?=:\d+:\d+)/g,
        (match, tail: string) => {
          for (const [known, file] of byTail) if (known.endsWith(tail)) return file;
          return match;
        },
      );
    },
  };
}

function importError(file: string, line: number, specifier: string): PluginImportError {
  if (/(^|\/)mod\.ts$/.test(specifier) || specifier.includes("k8stun")) {
    return new PluginImportError(
      file,
      line,
      specifier,
      'import k8stun\'s API for types only ("import type { … }"); use ctx.DialError and the ' +
        "other values setup(ctx) receives",
    );
  }
  return new PluginImportError(
    file,
    line,
    specifier,
    "a plugin can only import its own files by relative path; bundle third-party code into the " +
      "plugin first (`k8stun plugins bundle DIR`) or copy it into the plugin's folder",
  );
}

function isRelative(specifier: string): boolean {
  return specifier.startsWith("./") || specifier.startsWith("../");
}

function base64(text: string): string {
  const bytes = new TextEncoder().encode(text);
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}
