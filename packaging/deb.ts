/**
 * Builds `k8stun_<version>_<arch>.deb` like the Rust k8stun's: the binary in /usr/bin, the man
 * page and the bash, zsh and fish completions made from its `--help` (help_text.ts), and a
 * control file; `dpkg-deb --root-owner-group` makes every file root's.
 *
 *   deno run -A packaging/deb.ts --binary dist/k8stun-linux-x86_64 --arch amd64 \
 *     --version 0.1.0 --help-from dist/k8stun-linux-x86_64 --out dist
 *
 * `--help-from` is the executable whose help is read (the binary itself unless it is for another
 * CPU: the help text is the same on every architecture).
 */
import { readHelp } from "./help_text.ts";
import { manPage } from "./man_page.ts";
import { bashCompletion, fishCompletion, zshCompletion } from "./completions.ts";

/** Debian architectures the release builds, and the binary each takes. */
export const DEB_ARCHITECTURES = ["amd64", "arm64"] as const;
export type DebArchitecture = typeof DEB_ARCHITECTURES[number];

/** What goes into a package. */
export interface DebOptions {
  binary: string;
  version: string;
  arch: DebArchitecture;
  /** The executable whose `--help` makes the man page and completions. */
  helpFrom: string;
  /** The directory the .deb is written to. */
  out: string;
  /** Date on the man page (YYYY-MM-DD). */
  date?: string;
}

/** Where each file goes in the package (paths under its root). */
export const DEB_PATHS = {
  binary: "usr/bin/k8stun",
  man: "usr/share/man/man1/k8stun.1.gz",
  bash: "usr/share/bash-completion/completions/k8stun",
  zsh: "usr/share/zsh/vendor-completions/_k8stun",
  fish: "usr/share/fish/vendor_completions.d/k8stun.fish",
} as const;

/** A Debian version: digits first, then what policy allows (no dash: there is no revision). */
const VERSION = /^[0-9][A-Za-z0-9.+~]*$/;

/** The control file (deb-control(5)). */
export function controlFile(version: string, arch: DebArchitecture, installedKiB: number): string {
  return [
    "Package: k8stun",
    `Version: ${version}`,
    `Architecture: ${arch}`,
    "Maintainer: k8stun maintainers <k8stun@users.noreply.github.com>",
    `Installed-Size: ${installedKiB}`,
    "Section: net",
    "Priority: optional",
    "Homepage: https://github.com/k8stun/k8stun",
    "Description: transparent network access into a Kubernetes cluster",
    " k8stun gives this machine the cluster's network: services by name and VIP",
    " through a TUN device, cluster DNS, and a SOCKS5/HTTP proxy that needs no root.",
    "",
  ].join("\n");
}

async function gzip(text: string): Promise<Uint8Array> {
  const stream = new Blob([text]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** Builds the package; returns its path. */
export async function buildDeb(options: DebOptions): Promise<string> {
  if (!VERSION.test(options.version)) {
    throw new Error(
      `"${options.version}" is not a Debian version: it must start with a digit (a tag v1.2.3 ` +
        "gives 1.2.3)",
    );
  }
  if (!(DEB_ARCHITECTURES as readonly string[]).includes(options.arch)) {
    throw new Error(`unknown architecture ${options.arch} (amd64 or arm64)`);
  }
  const help = await readHelp(options.helpFrom);
  const root = await Deno.makeTempDir({ prefix: "k8stun-deb-" });
  try {
    const place = async (path: string, data: Uint8Array | string, mode: number) => {
      const file = `${root}/${path}`;
      await Deno.mkdir(file.slice(0, file.lastIndexOf("/")), { recursive: true, mode: 0o755 });
      if (typeof data === "string") await Deno.writeTextFile(file, data, { mode });
      else await Deno.writeFile(file, data, { mode });
      await Deno.chmod(file, mode); // the umask must not decide
    };
    const date = options.date ?? new Date().toISOString().slice(0, 10);
    await place(DEB_PATHS.binary, await Deno.readFile(options.binary), 0o755);
    await place(DEB_PATHS.man, await gzip(manPage(help, options.version, date)), 0o644);
    await place(DEB_PATHS.bash, bashCompletion(help), 0o644);
    await place(DEB_PATHS.zsh, zshCompletion(help), 0o644);
    await place(DEB_PATHS.fish, fishCompletion(help), 0o644);
    let bytes = 0;
    for (const path of Object.values(DEB_PATHS)) bytes += (await Deno.stat(`${root}/${path}`)).size;
    await place(
      "DEBIAN/control",
      controlFile(options.version, options.arch, Math.ceil(bytes / 1024)),
      0o644,
    );
    await Deno.mkdir(options.out, { recursive: true });
    const output = `${options.out}/k8stun_${options.version}_${options.arch}.deb`;
    const out = await new Deno.Command("dpkg-deb", {
      args: ["--root-owner-group", "--build", root, output],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) {
      throw new Error(`dpkg-deb failed: ${new TextDecoder().decode(out.stderr).trim()}`);
    }
    return output;
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

if (import.meta.main) {
  const flag = (name: string) => {
    const at = Deno.args.indexOf(`--${name}`);
    const value = at >= 0 ? Deno.args[at + 1] : undefined;
    if (value === undefined) {
      console.error(
        `k8stun deb: --${name} is missing (see the usage at the top of packaging/deb.ts)`,
      );
      Deno.exit(2);
    }
    return value;
  };
  const binary = flag("binary");
  try {
    const path = await buildDeb({
      binary,
      version: flag("version").replace(/^v/, ""),
      arch: flag("arch") as DebArchitecture,
      helpFrom: Deno.args.includes("--help-from") ? flag("help-from") : binary,
      out: flag("out"),
    });
    console.log(`k8stun deb: wrote ${path}`);
  } catch (error) {
    console.error(`k8stun deb: ${error instanceof Error ? error.message : error}`);
    Deno.exit(1);
  }
}
