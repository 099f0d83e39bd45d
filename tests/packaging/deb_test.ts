/**
 * Release packages (packaging/): a .deb built with dpkg-deb around a stand-in executable installs
 * into a scratch root with `dpkg --root` — the binary in /usr/bin, the man page and completions
 * made from its --help — and removes cleanly; the Homebrew formula names both macOS binaries with
 * their sha256 and passes `ruby -c` where ruby is installed.
 */
import { assert, assertEquals, assertMatch, assertRejects, assertThrows } from "../assert.ts";
import { buildDeb, DEB_PATHS } from "../../packaging/deb.ts";
import { formula } from "../../packaging/formula.ts";

const has = (program: string) =>
  new Deno.Command("sh", { args: ["-c", `command -v ${program}`], stdout: "null" }).outputSync()
    .success;
const noDpkg = !has("dpkg-deb") || !has("dpkg");

/** Help texts in commander's layout, as the real binary prints them. */
const STAND_IN = `#!/bin/sh
case "$1 $2" in
  "--help ") cat <<'HELP'
Usage: k8stun [options] [command]

Transparent network access from this machine into a Kubernetes cluster.

Options:
  -V, --version            print the version
  -h, --help               display help for command

Commands:
  run [options]            TUN mode: route a virtual-IP range into the cluster
                           (needs root)
  help [command]           display help for command
HELP
  ;;
  "run --help") cat <<'HELP'
Usage: k8stun run [options]

TUN mode: route a virtual-IP range into the cluster (needs root)

Options:
  --mtu <bytes>            MTU of the TUN device (default: 1500)
  --tun-offload <mode>     on or off (choices: "on", "off", default: "on")
  -h, --help               display help for command
HELP
  ;;
  *) echo "stand-in k8stun $*" ;;
esac
`;

async function run(command: string, args: string[]) {
  const out = await new Deno.Command(command, { args, stdout: "piped", stderr: "piped" }).output();
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

Deno.test({
  name:
    "packaging: the .deb installs the binary in /usr/bin with a man page and completions from --help, and removes cleanly",
  ignore: noDpkg,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "k8stun-deb-test-" });
    try {
      const binary = `${dir}/k8stun`;
      await Deno.writeTextFile(binary, STAND_IN, { mode: 0o755 });
      const deb = await buildDeb({
        binary,
        version: "1.2.3",
        arch: "arm64",
        helpFrom: binary,
        out: `${dir}/dist`,
        date: "2024-01-02",
      });
      assertEquals(deb, `${dir}/dist/k8stun_1.2.3_arm64.deb`);
      const fields = await run("dpkg-deb", ["--field", deb, "Package", "Version", "Architecture"]);
      assertEquals(fields.stdout, "Package: k8stun\nVersion: 1.2.3\nArchitecture: arm64\n");
      const listing = await run("dpkg-deb", ["--contents", deb]);
      for (const line of listing.stdout.trim().split("\n")) {
        assertMatch(line, /^\S+ root\/root /, "every file is root's");
      }

      // A scratch root with an empty dpkg database; --force-architecture: the package is arm64.
      const root = `${dir}/root`;
      for (const sub of ["info", "updates", "triggers"]) {
        await Deno.mkdir(`${root}/var/lib/dpkg/${sub}`, { recursive: true });
      }
      await Deno.writeTextFile(`${root}/var/lib/dpkg/status`, "");
      const dpkg = (args: string[]) =>
        run("dpkg", [
          `--root=${root}`,
          "--force-architecture",
          "--force-script-chrootless",
          ...args,
        ]);
      const installed = await dpkg(["--install", deb]);
      assertEquals(installed.code, 0, installed.stderr);
      const stat = await Deno.stat(`${root}/${DEB_PATHS.binary}`);
      assertEquals(stat.mode! & 0o777, 0o755);
      const ran = await run(`${root}/${DEB_PATHS.binary}`, ["status"]);
      assertEquals(ran.stdout, "stand-in k8stun status\n", "the installed binary is ours");

      const man = await run("sh", ["-c", `gzip -dc ${root}/${DEB_PATHS.man}`]);
      assertMatch(man.stdout, /^\.TH K8STUN 1 "2024-01-02" "k8stun 1\.2\.3"/);
      assertMatch(man.stdout, /\.SS k8stun run \[options\]/);
      assertMatch(man.stdout, /\\-\\-tun\\-offload <mode>/);
      const bash = await Deno.readTextFile(`${root}/${DEB_PATHS.bash}`);
      assertMatch(bash, /words="run -V --version -h --help"/, "commands and global flags");
      assertMatch(bash, /run\) words="--mtu --tun-offload -h --help"/);
      const syntax = await run("bash", ["-n", `${root}/${DEB_PATHS.bash}`]);
      assertEquals(syntax.code, 0, syntax.stderr);
      assertMatch(await Deno.readTextFile(`${root}/${DEB_PATHS.zsh}`), /^#compdef k8stun/);
      assertMatch(
        await Deno.readTextFile(`${root}/${DEB_PATHS.fish}`),
        /__fish_seen_subcommand_from run" -l tun-offload/,
      );

      const removed = await dpkg(["--purge", "k8stun"]);
      assertEquals(removed.code, 0, removed.stderr);
      for (const path of Object.values(DEB_PATHS)) {
        await assertRejects(() => Deno.stat(`${root}/${path}`), Deno.errors.NotFound);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("packaging: a version that is not a Debian version is refused before anything is built", async () => {
  await assertRejects(
    () =>
      buildDeb({ binary: "/nonexistent", version: "v1.2", arch: "amd64", helpFrom: "", out: "/" }),
    /is not a Debian version/,
  );
});

const SUM_ARM = "a".repeat(64);
const SUM_INTEL = "b".repeat(64);

Deno.test("packaging: the Homebrew formula names each macOS binary with its own sha256", async () => {
  const text = formula({
    version: "1.2.3",
    baseUrl: "https://github.com/k8stun/k8stun/releases/download/v1.2.3",
    sha256: { arm64: SUM_ARM, x86_64: SUM_INTEL },
  });
  assertMatch(
    text,
    new RegExp(
      `on_arm do\\n\\s+url "https://github.com/k8stun/k8stun/releases/download/v1.2.3/` +
        `k8stun-darwin-aarch64"\\n\\s+sha256 "${SUM_ARM}"`,
    ),
  );
  assertMatch(text, new RegExp(`k8stun-darwin-x86_64"\\n\\s+sha256 "${SUM_INTEL}"`));
  assertMatch(text, /version "1\.2\.3"/);
  if (has("ruby")) {
    const file = await Deno.makeTempFile({ suffix: ".rb" });
    await Deno.writeTextFile(file, text);
    const checked = await run("ruby", ["-c", file]);
    await Deno.remove(file);
    assertEquals(checked.stdout.trim(), "Syntax OK", checked.stderr);
  } else {
    assert(text.trimEnd().endsWith("end"), "ruby is not installed here: `ruby -c` runs in CI");
  }
});

Deno.test("packaging: the formula refuses a sha256 that is not 64 hex digits and a non-https URL", () => {
  const base = "https://example.com/v1";
  assertThrows(
    () => formula({ version: "1", baseUrl: base, sha256: { arm64: "x", x86_64: SUM_INTEL } }),
    /the arm64 sha256 "x" is not 64 hex digits/,
  );
  assertThrows(
    () =>
      formula({
        version: "1",
        baseUrl: "http://example.com/v1",
        sha256: { arm64: SUM_ARM, x86_64: SUM_INTEL },
      }),
    /must be https/,
  );
});
