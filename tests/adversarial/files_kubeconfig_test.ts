/**
 * A kubeconfig is the user's file, read by k8stun running as root: its credential plugin must run
 * as the user who ran sudo, not as root, and a cluster without certificate checks is said aloud.
 * sudo is simulated with SUDO_UID/SUDO_GID = 65534 (nobody).
 */
import { assert, assertEquals, assertMatch } from "../assert.ts";
import { loadKubeConfig } from "../../core/kubeconfig.ts";

const ignore = Deno.uid() !== 0 || Deno.build.os !== "linux";
const NOBODY = 65534;

function kubeconfig(user: string[], cluster: string[] = []): string {
  return [
    "apiVersion: v1",
    "kind: Config",
    "clusters:",
    "- name: lab-cluster",
    "  cluster:",
    "    server: https://127.0.0.1:1",
    ...cluster,
    "users:",
    "- name: lab-user",
    "  user:",
    ...user,
    "contexts:",
    "- name: lab",
    "  context: {cluster: lab-cluster, user: lab-user}",
    "current-context: lab",
    "",
  ].join("\n");
}

Deno.test({
  name: "files: under sudo, an exec credential plugin runs as the invoking user with their HOME",
  ignore,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "k8stun-files-" });
    try {
      await Deno.chmod(dir, 0o755); // nobody must reach the plugin and its output
      const home = `${dir}/home`;
      await Deno.mkdir(home, { mode: 0o755 });
      await Deno.chown(home, NOBODY, NOBODY);
      const plugin = `${dir}/credential-plugin`;
      await Deno.writeTextFile(
        plugin,
        [
          "#!/bin/sh",
          `{ id -u; id -g; echo "$HOME"; } > "${home}/ran-as"`,
          `echo '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential",` +
          `"status":{"token":"from-plugin"}}'`,
          "",
        ].join("\n"),
      );
      await Deno.chmod(plugin, 0o755);
      const path = `${dir}/kubeconfig`;
      await Deno.writeTextFile(
        path,
        kubeconfig([
          "    exec:",
          "      apiVersion: client.authentication.k8s.io/v1",
          `      command: ${plugin}`,
          "      interactiveMode: Never",
        ]),
      );
      const env: Record<string, string> = {
        SUDO_UID: String(NOBODY),
        SUDO_GID: String(NOBODY),
        HOME: home,
        PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      };
      const kube = loadKubeConfig({ kubeconfig: path }, { env: (name) => env[name] });
      const { headers } = await kube.access.credentials();
      assertEquals(headers["Authorization"], "Bearer from-plugin");
      const [uid, gid, pluginHome] = (await Deno.readTextFile(`${home}/ran-as`)).split("\n");
      assertEquals(uid, String(NOBODY), "the plugin ran as the invoking user, not root");
      assertEquals(gid, String(NOBODY));
      assertEquals(pluginHome, home);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("files: insecure-skip-tls-verify logs one warning naming the cluster", async () => {
  const dir = await Deno.makeTempDir({ prefix: "k8stun-files-" });
  try {
    const path = `${dir}/kubeconfig`;
    await Deno.writeTextFile(
      path,
      kubeconfig(["    token: t"], ["    insecure-skip-tls-verify: true"]),
    );
    const warnings: string[] = [];
    const kube = loadKubeConfig({ kubeconfig: path }, {
      env: () => undefined,
      warn: (m) => warnings.push(m),
    });
    assertEquals(kube.context, "lab");
    assertEquals(warnings.length, 1, warnings.join("\n"));
    assertMatch(warnings[0], /"lab-cluster".*insecure-skip-tls-verify/);

    const checked: string[] = [];
    await Deno.writeTextFile(path, kubeconfig(["    token: t"]));
    loadKubeConfig({ kubeconfig: path }, { env: () => undefined, warn: (m) => checked.push(m) });
    assertEquals(checked, [], "no warning when the certificate is checked");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "files: without sudo, the credential plugin runs unchanged",
  ignore,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "k8stun-files-" });
    try {
      const path = `${dir}/kubeconfig`;
      await Deno.writeTextFile(
        path,
        kubeconfig(["    exec:", "      command: /bin/true", "      args: [x]"]),
      );
      const kube = loadKubeConfig({ kubeconfig: path }, { env: () => undefined });
      const exec = kube.access.user.exec;
      assert(exec);
      assertEquals([exec.command, exec.args], ["/bin/true", ["x"]]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "files: under sudo, the kubeconfig and the files it names are read with the invoking user's access, not root's",
  ignore,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "k8stun-files-" });
    try {
      await Deno.chmod(dir, 0o755);
      const env: Record<string, string> = {
        SUDO_UID: String(NOBODY),
        SUDO_GID: String(NOBODY),
        PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      };
      const load = (path: string) => loadKubeConfig({ kubeconfig: path }, { env: (n) => env[n] });
      // Root's secret, in a file only root may read; the user names it as a token file.
      const secret = `${dir}/root-secret`;
      await Deno.writeTextFile(secret, "root-only-secret\n", { mode: 0o600 });
      await Deno.chmod(secret, 0o600);
      const naming = `${dir}/kubeconfig`;
      await Deno.writeTextFile(naming, kubeconfig([`    tokenFile: ${secret}`]), { mode: 0o644 });
      const error = await load(naming).access.credentials().then(() => undefined, (e) => e);
      assert(error instanceof Error, "credentials from a file the user cannot read");
      assertMatch(error.message, /cannot read tokenFile .*Permission denied/);
      assert(!error.message.includes("root-only-secret"));

      // The same file, once the user may read it, is theirs to use.
      await Deno.chown(secret, NOBODY, NOBODY);
      const { headers } = await load(naming).access.credentials();
      assertEquals(headers["Authorization"], "Bearer root-only-secret");

      // A kubeconfig only root may read is refused as it would be for the user, unquoted.
      const rootOnly = `${dir}/root-kubeconfig`;
      await Deno.writeTextFile(rootOnly, "root:$6$hash:19000:0:99999:7:::\n", { mode: 0o600 });
      await Deno.chmod(rootOnly, 0o600);
      const refused = (() => {
        try {
          load(rootOnly);
        } catch (e) {
          return e as Error;
        }
      })();
      assertMatch(refused?.message ?? "", /cannot read kubeconfig .*Permission denied/);
      assert(!refused!.message.includes("$6$hash"));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("files: a kubeconfig over 16 MiB is refused with its size, not read whole", async () => {
  const dir = await Deno.makeTempDir({ prefix: "k8stun-files-" });
  try {
    const path = `${dir}/kubeconfig`;
    await Deno.writeFile(path, new Uint8Array(17 * 1024 * 1024).fill(0x23)); // "#" comments
    const error = (() => {
      try {
        loadKubeConfig({ kubeconfig: path }, { env: () => undefined });
      } catch (e) {
        return e as Error;
      }
    })();
    assertMatch(error?.message ?? "", /cannot read kubeconfig .*larger than 16 MiB/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("files: a token file that is a FIFO is an error, not a start-up that blocks until someone writes", async () => {
  const dir = await Deno.makeTempDir({ prefix: "k8stun-files-" });
  try {
    const fifo = `${dir}/token`;
    const made = await new Deno.Command("mkfifo", { args: [fifo] }).output();
    assert(made.success, "mkfifo");
    const path = `${dir}/kubeconfig`;
    await Deno.writeTextFile(path, kubeconfig([`    tokenFile: ${fifo}`]));
    const loaded = loadKubeConfig({ kubeconfig: path }, { env: () => undefined });
    const error = await loaded.access.credentials().then(() => undefined, (e) => e as Error);
    assertMatch(error?.message ?? "", /cannot read tokenFile .*not a regular file/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
