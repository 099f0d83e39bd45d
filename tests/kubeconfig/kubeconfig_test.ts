/** Loading the kubeconfig (core/kubeconfig.ts): errors a user can act on. */
import { assert, assertEquals, assertMatch, assertThrows } from "../assert.ts";
import { KubeConfigError, loadKubeConfig } from "../../core/kubeconfig.ts";

Deno.test("kubeconfig: a missing file or context is one clear error naming them", () => {
  assertThrows(
    () => loadKubeConfig({ kubeconfig: "/nonexistent/kubeconfig" }),
    /no kubeconfig found at \/nonexistent\/kubeconfig — pass --kubeconfig FILE/,
  );
});

/** A kubeconfig of one cluster, user and context, named after `tag`. */
function kubeconfig(
  tag: string,
  options: { user?: string[]; cluster?: string[]; current?: boolean; namespace?: string } = {},
): string {
  return [
    "apiVersion: v1",
    "kind: Config",
    "clusters:",
    `- name: ${tag}-cluster`,
    "  cluster:",
    `    server: https://${tag}.example:6443`,
    ...(options.cluster ?? []),
    "users:",
    `- name: ${tag}-user`,
    "  user:",
    ...(options.user ?? [`    token: ${tag}-token`]),
    "contexts:",
    `- name: ${tag}`,
    "  context:",
    `    cluster: ${tag}-cluster`,
    `    user: ${tag}-user`,
    ...(options.namespace ? [`    namespace: ${options.namespace}`] : []),
    ...(options.current === false ? [] : [`current-context: ${tag}`]),
    "",
  ].join("\n");
}

/** A temporary directory others may read, as a home's kubeconfig is (sudo cases read as them). */
async function withTempDir(fn: (dir: string) => void | Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "k8stun-kubeconfig-" });
  await Deno.chmod(dir, 0o755);
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** An environment of only `vars` (no sudo, no KUBECONFIG unless given). */
function envOf(vars: Record<string, string>): (name: string) => string | undefined {
  return (name) => vars[name];
}

/** The KubeConfigError message `load` throws, checked to be one line. */
function loadError(load: () => unknown): string {
  let message = "";
  assertThrows(load, (error: unknown) => {
    assert(error instanceof KubeConfigError, `not a KubeConfigError: ${error}`);
    message = error.message;
    return true;
  });
  assert(!message.includes("\n"), `more than one line: ${message}`);
  return message;
}

Deno.test("kubeconfig: KUBECONFIG lists files merged; the second file's context is reachable by name", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/a`, kubeconfig("a"));
    await Deno.writeTextFile(`${dir}/b`, kubeconfig("b", { namespace: "team-b" }));
    const env = envOf({ KUBECONFIG: `${dir}/a:${dir}/b` });
    const first = loadKubeConfig({}, { env });
    assertEquals(first.files, [`${dir}/a`, `${dir}/b`]);
    assertEquals(first.context, "a", "the first file's current-context is the current one");
    assertEquals(first.server, "https://a.example:6443");
    assertEquals(first.namespace, "default");
    assertEquals((await first.access.credentials()).headers, { Authorization: "Bearer a-token" });
    const second = loadKubeConfig({ context: "b" }, { env });
    assertEquals(second.context, "b");
    assertEquals(second.server, "https://b.example:6443");
    assertEquals(second.namespace, "team-b");
    assertEquals((await second.access.credentials()).headers, { Authorization: "Bearer b-token" });
  });
});

Deno.test("kubeconfig: KUBECONFIG — a later file's current-context is used when the first sets none", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/a`, kubeconfig("a", { current: false }));
    await Deno.writeTextFile(`${dir}/b`, kubeconfig("b"));
    const loaded = loadKubeConfig({}, { env: envOf({ KUBECONFIG: `${dir}/a:${dir}/b` }) });
    assertEquals(loaded.context, "b");
  });
});

Deno.test("kubeconfig: KUBECONFIG — the first file that names an entry wins it", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/a`, kubeconfig("x", { user: ["    token: from-a"] }));
    await Deno.writeTextFile(`${dir}/b`, kubeconfig("x", { user: ["    token: from-b"] }));
    const loaded = loadKubeConfig({}, { env: envOf({ KUBECONFIG: `${dir}/b:${dir}/a` }) });
    assertEquals((await loaded.access.credentials()).headers, { Authorization: "Bearer from-b" });
  });
});

Deno.test("kubeconfig: KUBECONFIG — missing files and empty items are skipped", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/b`, kubeconfig("b"));
    const loaded = loadKubeConfig({}, {
      env: envOf({ KUBECONFIG: `${dir}/missing::${dir}/b:` }),
    });
    assertEquals(loaded.files, [`${dir}/b`]);
    assertEquals(loaded.context, "b");
    assertEquals(
      loadError(() => loadKubeConfig({}, { env: envOf({ KUBECONFIG: `${dir}/x:${dir}/y` }) })),
      `no kubeconfig found at ${dir}/x:${dir}/y — pass --kubeconfig FILE, set KUBECONFIG, or run ` +
        "k8stun demo",
    );
  });
});

Deno.test("kubeconfig: --kubeconfig wins over KUBECONFIG", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/a`, kubeconfig("a"));
    await Deno.writeTextFile(`${dir}/b`, kubeconfig("b"));
    const loaded = loadKubeConfig({ kubeconfig: `${dir}/b` }, {
      env: envOf({ KUBECONFIG: `${dir}/a` }),
    });
    assertEquals(loaded.files, [`${dir}/b`]);
    assertEquals(loaded.context, "b");
  });
});

Deno.test("kubeconfig: without --kubeconfig or KUBECONFIG, ~/.kube/config is read", async () => {
  await withTempDir(async (dir) => {
    await Deno.mkdir(`${dir}/.kube`);
    await Deno.writeTextFile(`${dir}/.kube/config`, kubeconfig("home"));
    const loaded = loadKubeConfig({}, { env: envOf({ HOME: dir }) });
    assertEquals(loaded.files, [`${dir}/.kube/config`]);
    assertEquals(loaded.context, "home");
  });
});

Deno.test("kubeconfig: a context that does not exist is an error naming the files and the contexts", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/a`, kubeconfig("a"));
    await Deno.writeTextFile(`${dir}/b`, kubeconfig("b"));
    const env = envOf({ KUBECONFIG: `${dir}/a:${dir}/b` });
    assertEquals(
      loadError(() => loadKubeConfig({ context: "nope" }, { env })),
      `kubeconfig ${dir}/a:${dir}/b: no context "nope" (contexts: a, b)`,
    );
  });
});

Deno.test("kubeconfig: a context naming an undefined cluster is an error naming both", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(
      `${dir}/config`,
      kubeconfig("a").replace("cluster: a-cluster", "cluster: gone"),
    );
    assertEquals(
      loadError(() => loadKubeConfig({ kubeconfig: `${dir}/config` }, { env: envOf({}) })),
      `kubeconfig ${dir}/config: context "a" names cluster "gone", which is not defined`,
    );
  });
});

Deno.test("kubeconfig: a kubeconfig that is not YAML is 'cannot read kubeconfig <file>: ...'", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/good`, kubeconfig("a"));
    await Deno.writeTextFile(`${dir}/bad`, "clusters: [\n  - {name: x\n");
    const message = loadError(() =>
      loadKubeConfig({}, { env: envOf({ KUBECONFIG: `${dir}/good:${dir}/bad` }) })
    );
    assertMatch(message, new RegExp(`^cannot read kubeconfig ${dir}/bad: not YAML \\(.+\\)$`));
  });
});

Deno.test("kubeconfig: a malformed entry is 'cannot read kubeconfig <file>: <entry> ...'", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(
      `${dir}/config`,
      kubeconfig("a").replace("    server: https://a.example:6443\n", ""),
    );
    assertEquals(
      loadError(() => loadKubeConfig({ kubeconfig: `${dir}/config` }, { env: envOf({}) })),
      `cannot read kubeconfig ${dir}/config: cluster "a-cluster" has no server`,
    );
  });
});

Deno.test("kubeconfig: relative paths in a file resolve against its directory", async () => {
  await withTempDir(async (dir) => {
    await Deno.mkdir(`${dir}/kube`);
    await Deno.writeTextFile(`${dir}/kube/token`, "relative-token\n");
    await Deno.writeTextFile(
      `${dir}/kube/config`,
      kubeconfig("a", { user: ["    tokenFile: token", "    exec: {command: ./plugin}"] }),
    );
    const loaded = loadKubeConfig({ kubeconfig: `${dir}/kube/config` }, { env: envOf({}) });
    assertEquals(loaded.access.user.tokenFile, `${dir}/kube/token`);
    assertEquals(loaded.access.user.exec?.command, `${dir}/kube/./plugin`);
  });
});

Deno.test("kubeconfig: insecure-skip-tls-verify warns once naming the cluster; `no` does not", async () => {
  await withTempDir((dir) => {
    const load = (value: string, server = "https://a.example:6443") => {
      const text = kubeconfig("a", { cluster: [`    insecure-skip-tls-verify: ${value}`] })
        .replace("https://a.example:6443", server);
      Deno.writeTextFileSync(`${dir}/config`, text);
      const warnings: string[] = [];
      const loaded = loadKubeConfig({ kubeconfig: `${dir}/config` }, {
        env: envOf({}),
        warn: (message) => warnings.push(message),
      });
      return { loaded, warnings };
    };
    const skipped = load("true");
    assertEquals(skipped.warnings.length, 1);
    assertMatch(
      skipped.warnings[0],
      /^kubeconfig cluster "a-cluster" \(https:\/\/a\.example:6443\)/,
    );
    assertEquals(skipped.loaded.access.cluster["insecure-skip-tls-verify"], true);
    assertEquals(load("yes").warnings.length, 1, "YAML 1.1's yes is true");
    for (const value of ["false", "no", "off"]) {
      const checked = load(value);
      assertEquals(checked.warnings, [], value);
      assertEquals(checked.loaded.access.cluster["insecure-skip-tls-verify"], false, value);
    }
    assertEquals(load("true", "http://a.example:8080").warnings, [], "plain HTTP has no TLS");
  });
});

// ---- under sudo -----------------------------------------------------------------------------

const NOBODY = 65534;
/** Root with SUDO_UID, as sudo runs k8stun (the wrapping is Linux's setpriv). */
const notSudoable = Deno.uid() !== 0 || Deno.build.os !== "linux";

Deno.test({
  name: "kubeconfig: under sudo, the exec plugin is wrapped in setpriv to run as the invoking user",
  ignore: notSudoable,
  async fn() {
    await withTempDir(async (dir) => {
      await Deno.writeTextFile(
        `${dir}/config`,
        kubeconfig("a", {
          user: [
            "    exec:",
            "      apiVersion: client.authentication.k8s.io/v1",
            "      command: bin/get-token",
            "      args: [--cluster, a]",
            "      env: [{name: REGION, value: eu}]",
            "    as: bob",
          ],
        }),
      );
      const env = envOf({
        SUDO_UID: String(NOBODY),
        SUDO_GID: "4321",
        HOME: `${dir}/home`,
      });
      const loaded = loadKubeConfig({ kubeconfig: `${dir}/config` }, { env });
      assertEquals(loaded.access.user.exec, {
        apiVersion: "client.authentication.k8s.io/v1",
        command: "setpriv",
        args: [
          `--reuid=${NOBODY}`,
          "--regid=4321",
          "--clear-groups",
          "--",
          `${dir}/bin/get-token`,
          "--cluster",
          "a",
        ],
        env: [{ name: "REGION", value: "eu" }, { name: "HOME", value: `${dir}/home` }],
      });
      assertEquals(loaded.access.user.as, "bob", "the rest of the user is kept");
      assertEquals(loaded.context, "a");
    });
  },
});

Deno.test({
  name:
    "kubeconfig: under sudo with SUDO_USER, setpriv takes the user's groups and sets USER, LOGNAME",
  ignore: notSudoable ||
    !Deno.readTextFileSync("/etc/passwd").split("\n").some((l) => l.startsWith("nobody:")),
  async fn() {
    await withTempDir(async (dir) => {
      await Deno.writeTextFile(
        `${dir}/config`,
        kubeconfig("a", { user: ["    exec: {command: kubelogin, args: [get-token]}"] }),
      );
      const env = envOf({
        SUDO_UID: String(NOBODY),
        SUDO_GID: String(NOBODY),
        SUDO_USER: "nobody",
      });
      const exec = loadKubeConfig({ kubeconfig: `${dir}/config` }, { env }).access.user.exec!;
      assertEquals(exec.command, "setpriv");
      assertEquals(exec.args, [
        `--reuid=${NOBODY}`,
        `--regid=${NOBODY}`,
        "--init-groups",
        "--",
        "kubelogin",
        "get-token",
      ]);
      const variables = Object.fromEntries((exec.env ?? []).map((v) => [v.name, v.value]));
      assertEquals(variables.USER, "nobody");
      assertEquals(variables.LOGNAME, "nobody");
      assert(variables.HOME, "the user's home from the passwd entry");
    });
  },
});

Deno.test({
  name: "kubeconfig: under sudo, auth-provider.config.exec is wrapped too",
  ignore: notSudoable,
  async fn() {
    await withTempDir(async (dir) => {
      await Deno.writeTextFile(
        `${dir}/config`,
        kubeconfig("a", {
          user: [
            "    auth-provider:",
            "      name: oidc",
            "      config:",
            "        client-id: k8s",
            "        exec: {command: /usr/bin/get-token}",
          ],
        }),
      );
      const env = envOf({ SUDO_UID: String(NOBODY), SUDO_GID: String(NOBODY), HOME: "/h" });
      const provider = loadKubeConfig({ kubeconfig: `${dir}/config` }, { env }).access
        .user["auth-provider"]!;
      assertEquals(provider.name, "oidc");
      assertEquals(provider.config?.["client-id"], "k8s");
      assertEquals(provider.config?.exec, {
        command: "setpriv",
        args: [
          `--reuid=${NOBODY}`,
          `--regid=${NOBODY}`,
          "--clear-groups",
          "--",
          "/usr/bin/get-token",
        ],
        env: [{ name: "HOME", value: "/h" }],
      });
    });
  },
});

Deno.test("kubeconfig: without sudo (no SUDO_UID) the exec plugin is left as written", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(
      `${dir}/config`,
      kubeconfig("a", { user: ["    exec: {command: kubelogin, args: [get-token]}"] }),
    );
    const loaded = loadKubeConfig({ kubeconfig: `${dir}/config` }, { env: envOf({ HOME: "/h" }) });
    assertEquals(loaded.access.user.exec, { command: "kubelogin", args: ["get-token"] });
  });
});
