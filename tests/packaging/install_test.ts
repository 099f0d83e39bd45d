/** install.sh against a local file server: right asset, checksum enforced, install without root. */
import { assert, assertEquals, assertMatch } from "../assert.ts";

const INSTALL = new URL("../../install.sh", import.meta.url).pathname;
const arch = Deno.build.arch === "aarch64" ? "aarch64" : "x86_64";
const asset = `k8stun-${Deno.build.os === "darwin" ? "darwin" : "linux"}-${arch}`;

function serveRelease(files: Record<string, string>) {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    const name = new URL(request.url).pathname.slice(1);
    return name in files ? new Response(files[name]) : new Response("not found", { status: 404 });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

async function sha256(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function install(url: string, home: string, asNobody: boolean) {
  // nobody may not reach the checkout (a clone below a 0700 directory): it runs a copy in HOME.
  const script = asNobody ? `${home}/install.sh` : INSTALL;
  if (asNobody) await Deno.copyFile(INSTALL, script);
  const cmd = asNobody ? "setpriv" : "sh";
  const args = asNobody
    ? ["--reuid=nobody", "--regid=nogroup", "--clear-groups", "sh", script]
    : [script];
  const out = await new Deno.Command(cmd, {
    args,
    env: { PATH: Deno.env.get("PATH")!, HOME: home, K8STUN_RELEASE_URL: url },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

Deno.test({
  name:
    "install.sh: picks this machine's asset, verifies it, and installs into ~/.local/bin without root",
  ignore: Deno.uid() !== 0, // needs root only to switch to the unprivileged user
  async fn() {
    const binary = "#!/bin/sh\necho k8stun-test-binary\n";
    await using release = await serveRelease({
      [asset]: binary,
      "SHA256SUMS": `${await sha256(binary)}  ${asset}\n${await sha256("other")}  k8stun-other\n`,
    });
    const home = await Deno.makeTempDir();
    try {
      await new Deno.Command("chown", { args: ["nobody:nogroup", home] }).output();
      const result = await install(release.url, home, true);
      assertEquals(result.code, 0, result.stderr);
      assertMatch(result.stdout, /k8stun installed to .*\.local\/bin\/k8stun/);
      const run = await new Deno.Command(`${home}/.local/bin/k8stun`, { stdout: "piped" }).output();
      assertEquals(new TextDecoder().decode(run.stdout), "k8stun-test-binary\n");
    } finally {
      await Deno.remove(home, { recursive: true });
    }
  },
});

Deno.test("install.sh: a bad checksum installs nothing and says why", async () => {
  await using release = await serveRelease({
    [asset]: "#!/bin/sh\necho tampered\n",
    "SHA256SUMS": `${await sha256("the real binary")}  ${asset}\n`,
  });
  const home = await Deno.makeTempDir();
  try {
    const result = await install(release.url, home, false);
    assert(result.code !== 0);
    assertMatch(result.stderr, /checksum mismatch for k8stun-.*; nothing installed/);
    const installed = await Deno.stat(`${home}/.local/bin/k8stun`).then(() => true, () => false);
    assert(!installed);
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});
