/**
 * The kubeconfig format (core/k8s/kubeconfig_document.ts): what a file gives, how several files
 * merge as kubectl merges KUBECONFIG, how paths inside an entry are anchored, and the one-line
 * errors a malformed file gives.
 */
import { assert, assertEquals, assertMatch, assertThrows } from "../assert.ts";
import {
  emptyKubeconfig,
  type KubeconfigDocument,
  KubeconfigFormatError,
  mergeKubeconfigs,
  parseKubeconfig,
} from "../../core/k8s/kubeconfig_document.ts";

const FULL = `
apiVersion: v1
kind: Config
preferences: {colors: true}
clusters:
- name: prod
  cluster:
    server: https://prod.example:6443
    certificate-authority-data: Q0E=
    tls-server-name: api.prod.example
    proxy-url: socks5://127.0.0.1:1080
    disable-compression: true
    extensions:
    - name: client.authentication.k8s.io/exec
      extension: {audience: prod}
users:
- name: alice
  user:
    token: t0k3n
    username: alice
    password: secret
    as: bob
    as-uid: "1000"
    as-groups: [dev, ops]
    as-user-extra: {reason: [debug]}
    client-certificate-data: Q0VSVA==
    client-key-data: S0VZ
    unknown-field: ignored
contexts:
- name: prod
  context: {cluster: prod, user: alice, namespace: team, extensions: []}
current-context: prod
`;

/** `value` without its properties that are undefined (absent and undefined are alike here). */
function defined<T>(value: T): T {
  return JSON.parse(JSON.stringify(value));
}

/** The fields of a document, comparable whether absent ones are left out or undefined. */
function fields(document: KubeconfigDocument) {
  return {
    clusters: [...document.clusters].map(([name, entry]) => [name, defined(entry)]),
    users: [...document.users].map(([name, entry]) => [name, defined(entry)]),
    contexts: [...document.contexts].map(([name, entry]) => [name, defined(entry)]),
    currentContext: document.currentContext ?? null,
  };
}

/** The KubeconfigFormatError message `parse` throws, checked to be one line. */
function formatError(parse: () => unknown): string {
  let message = "";
  assertThrows(parse, (error: unknown) => {
    assert(error instanceof KubeconfigFormatError, `not a KubeconfigFormatError: ${error}`);
    message = error.message;
    return true;
  });
  assert(!message.includes("\n"), `more than one line: ${message}`);
  return message;
}

/** A one-cluster, one-user, one-context document, its entries suffixed with `tag`. */
function documentText(tag: string, user: string[] = ["    token: t"], current = true): string {
  return [
    "clusters:",
    `- name: c${tag}`,
    "  cluster:",
    `    server: https://${tag}.example`,
    "users:",
    `- name: u${tag}`,
    "  user:",
    ...user,
    "contexts:",
    `- name: x${tag}`,
    `  context: {cluster: c${tag}, user: u${tag}}`,
    ...(current ? [`current-context: x${tag}`] : []),
    "",
  ].join("\n");
}

Deno.test("kubeconfig document: clusters, users, contexts and current-context are read", () => {
  const document = parseKubeconfig(FULL);
  assertEquals([...document.clusters.keys()], ["prod"]);
  assertEquals(defined(document.clusters.get("prod")), {
    server: "https://prod.example:6443",
    "certificate-authority-data": "Q0E=",
    "tls-server-name": "api.prod.example",
    "proxy-url": "socks5://127.0.0.1:1080",
    extensions: [{ name: "client.authentication.k8s.io/exec", extension: { audience: "prod" } }],
  });
  assertEquals(document.users.get("alice"), {
    token: "t0k3n",
    username: "alice",
    password: "secret",
    as: "bob",
    "as-uid": "1000",
    "as-groups": ["dev", "ops"],
    "as-user-extra": { reason: ["debug"] },
    "client-certificate-data": "Q0VSVA==",
    "client-key-data": "S0VZ",
  });
  assertEquals(document.contexts.get("prod"), {
    cluster: "prod",
    user: "alice",
    namespace: "team",
  });
  assertEquals(document.currentContext, "prod");
});

Deno.test("kubeconfig document: fields k8stun does not use are ignored, not refused", () => {
  const document = parseKubeconfig(FULL);
  assert(!("unknown-field" in document.users.get("alice")!));
  assert(!("disable-compression" in document.clusters.get("prod")!));
  assert(!("extensions" in document.contexts.get("prod")!));
});

Deno.test("kubeconfig document: an empty file, or one of only comments, is an empty document", () => {
  for (const text of ["", "\n", "# nothing yet\n", "---\n"]) {
    assertEquals(
      fields(parseKubeconfig(text, "/k/config")),
      fields(emptyKubeconfig()),
      JSON.stringify(text),
    );
  }
  assertEquals(emptyKubeconfig(), {
    clusters: new Map(),
    users: new Map(),
    contexts: new Map(),
  });
  assert(!("currentContext" in emptyKubeconfig()));
});

Deno.test("kubeconfig document: empty lists and a null user or context body are allowed", () => {
  const document = parseKubeconfig(
    [
      "clusters: []",
      "users:",
      "- name: nobody",
      "  user: null",
      "- name: bare",
      "contexts: []",
      'current-context: ""',
    ].join("\n"),
  );
  assertEquals(document.users.get("nobody"), {});
  assertEquals(document.users.get("bare"), {});
  assertEquals(document.currentContext, undefined, "an empty current-context chooses nothing");
});

Deno.test("kubeconfig document: a context without a user is kept without one", () => {
  const document = parseKubeconfig(
    "clusters: [{name: c, cluster: {server: https://c}}]\ncontexts: [{name: x, context: {cluster: c}}]\n",
  );
  assertEquals(document.contexts.get("x"), { cluster: "c" });
});

Deno.test("kubeconfig document: a file that is not YAML names the file", () => {
  const message = formatError(() => parseKubeconfig("clusters: [unclosed\n  - {", "/k/config"));
  assertMatch(message, /^\/k\/config: not YAML \(.+\)$/);
});

Deno.test("kubeconfig document: YAML that is not a mapping names the file", () => {
  for (const text of ["- a\n- b\n", "just a string\n", "42\n"]) {
    assertEquals(
      formatError(() => parseKubeconfig(text, "/k/config")),
      "/k/config: not a kubeconfig mapping",
    );
  }
});

Deno.test("kubeconfig document: without a file name, errors say kubeconfig", () => {
  assertEquals(formatError(() => parseKubeconfig("[]")), "kubeconfig: not a kubeconfig mapping");
});

Deno.test("kubeconfig document: clusters, users or contexts that are not a list name the list", () => {
  for (const list of ["clusters", "users", "contexts"]) {
    assertEquals(
      formatError(() => parseKubeconfig(`${list}: {a: b}\n`, "/k/config")),
      `/k/config: ${list} is not a list`,
    );
    assertEquals(
      formatError(() => parseKubeconfig(`${list}: oops\n`, "/k/config")),
      `/k/config: ${list} is not a list`,
    );
  }
});

Deno.test("kubeconfig document: an entry without a name names the list and its index", () => {
  assertEquals(
    formatError(() =>
      parseKubeconfig(
        "clusters:\n- name: a\n  cluster: {server: https://a}\n- cluster: {server: https://b}\n",
        "/k/config",
      )
    ),
    "/k/config: clusters[1] has no name",
  );
  assertEquals(
    formatError(() => parseKubeconfig('users:\n- name: ""\n', "/k/config")),
    "/k/config: users[0] has no name",
  );
  assertEquals(
    formatError(() => parseKubeconfig("contexts:\n- just-a-string\n", "/k/config")),
    "/k/config: contexts[0] has no name",
  );
  assertEquals(
    formatError(() => parseKubeconfig("contexts:\n- {name: 7}\n", "/k/config")),
    "/k/config: contexts[0] has no name",
  );
});

Deno.test("kubeconfig document: an entry body that is not a mapping names the entry", () => {
  assertEquals(
    formatError(() => parseKubeconfig("users:\n- name: alice\n  user: [a]\n", "/k/config")),
    '/k/config: user "alice" is not a mapping',
  );
  assertEquals(
    formatError(() => parseKubeconfig("clusters:\n- name: c\n  cluster: text\n", "/k/config")),
    '/k/config: cluster "c" is not a mapping',
  );
});

Deno.test("kubeconfig document: a cluster without a server names the cluster", () => {
  for (const body of ["{}", '{server: ""}', "{server: 6443}", "null"]) {
    assertEquals(
      formatError(() => parseKubeconfig(`clusters:\n- name: prod\n  cluster: ${body}\n`, "/k/c")),
      '/k/c: cluster "prod" has no server',
      body,
    );
  }
});

Deno.test("kubeconfig document: a context without a cluster names the context", () => {
  for (const body of ["{user: alice}", "{cluster: 3}", "null"]) {
    assertEquals(
      formatError(() => parseKubeconfig(`contexts:\n- name: prod\n  context: ${body}\n`, "/k/c")),
      '/k/c: context "prod" names no cluster',
      body,
    );
  }
});

Deno.test("kubeconfig document: a path field that is not a string names the user and the field", () => {
  for (
    const [field, value] of [["tokenFile", "5"], ["client-key", "[a]"], [
      "client-certificate",
      "{a: 1}",
    ]]
  ) {
    assertEquals(
      formatError(() =>
        parseKubeconfig(`users:\n- name: alice\n  user:\n    ${field}: ${value}\n`, "/k/c")
      ),
      `/k/c: user "alice" ${field} is not a string`,
    );
  }
  assertEquals(
    formatError(() =>
      parseKubeconfig("users:\n- name: alice\n  user:\n    exec: {command: 12}\n", "/k/c")
    ),
    '/k/c: user "alice" exec.command is not a string',
  );
  assertEquals(
    formatError(() =>
      parseKubeconfig(
        "clusters:\n- name: c\n  cluster: {server: https://c, certificate-authority: true}\n",
        "/k/c",
      )
    ),
    '/k/c: cluster "c" certificate-authority is not a string',
  );
});

Deno.test(
  "kubeconfig document: insecure-skip-tls-verify is a YAML 1.1 boolean as kubectl reads it (no is false)",
  () => {
    const skip = (value: string) =>
      parseKubeconfig(
        `clusters:\n- name: c\n  cluster: {server: https://c, insecure-skip-tls-verify: ${value}}\n`,
      ).clusters.get("c")!["insecure-skip-tls-verify"];
    for (const value of ["true", "True", "yes", "Yes", "on", "ON", "y"]) {
      assertEquals(skip(value), true, value);
    }
    for (const value of ["false", "FALSE", "no", "No", "off", "n", '"false"', '"no"']) {
      assertEquals(skip(value), false, value);
    }
    assertEquals(
      formatError(() =>
        parseKubeconfig(
          "clusters:\n- name: c\n  cluster: {server: https://c, insecure-skip-tls-verify: maybe}\n",
          "/k/c",
        )
      ),
      '/k/c: cluster "c" insecure-skip-tls-verify is not true or false',
    );
  },
);

Deno.test("kubeconfig document: relative paths resolve against the directory of the file", () => {
  const document = parseKubeconfig(
    [
      "clusters:",
      "- name: c",
      "  cluster: {server: https://c, certificate-authority: certs/ca.crt}",
      "users:",
      "- name: u",
      "  user:",
      "    client-certificate: certs/u.crt",
      "    client-key: ../keys/u.key",
      "    tokenFile: token",
      "    exec: {command: ./bin/get-token, args: [relative/arg]}",
    ].join("\n"),
    "/home/me/.kube/config",
  );
  assertEquals(
    document.clusters.get("c")!["certificate-authority"],
    "/home/me/.kube/certs/ca.crt",
  );
  const user = document.users.get("u")!;
  assertEquals(user["client-certificate"], "/home/me/.kube/certs/u.crt");
  assertEquals(user["client-key"], "/home/me/.kube/../keys/u.key");
  assertEquals(user.tokenFile, "/home/me/.kube/token");
  assertEquals(user.exec?.command, "/home/me/.kube/./bin/get-token");
  assertEquals(user.exec?.args, ["relative/arg"], "arguments are the plugin's own business");
});

Deno.test("kubeconfig document: a bare exec command name is left for PATH", () => {
  const document = parseKubeconfig(
    "users:\n- name: u\n  user:\n    exec: {command: kubelogin, args: [get-token]}\n",
    "/home/me/.kube/config",
  );
  assertEquals(document.users.get("u")!.exec, { command: "kubelogin", args: ["get-token"] });
});

Deno.test("kubeconfig document: absolute paths are kept as written", () => {
  const document = parseKubeconfig(
    [
      "clusters:",
      "- name: c",
      "  cluster: {server: https://c, certificate-authority: /etc/k/ca.crt}",
      "users:",
      "- name: u",
      "  user:",
      "    client-certificate: /etc/k/u.crt",
      "    client-key: /etc/k/u.key",
      "    tokenFile: /run/token",
      "    exec: {command: /usr/local/bin/plugin}",
    ].join("\n"),
    "/home/me/.kube/config",
  );
  assertEquals(document.clusters.get("c")!["certificate-authority"], "/etc/k/ca.crt");
  const user = document.users.get("u")!;
  assertEquals(user["client-certificate"], "/etc/k/u.crt");
  assertEquals(user["client-key"], "/etc/k/u.key");
  assertEquals(user.tokenFile, "/run/token");
  assertEquals(user.exec?.command, "/usr/local/bin/plugin");
});

Deno.test("kubeconfig document: without a file, relative paths stay as written", () => {
  const document = parseKubeconfig(
    "users:\n- name: u\n  user: {tokenFile: token, exec: {command: bin/plugin}}\n",
  );
  assertEquals(document.users.get("u")!.tokenFile, "token");
  assertEquals(document.users.get("u")!.exec?.command, "bin/plugin");
});

Deno.test(
  "kubeconfig document: a file named without a directory anchors its paths in the working directory",
  () => {
    const document = parseKubeconfig(
      "clusters: [{name: c, cluster: {server: https://c, certificate-authority: ca.crt}}]\n" +
        "users: [{name: u, user: {tokenFile: token, exec: {command: bin/plugin}}}]\n",
      "config",
    );
    assertEquals(document.clusters.get("c")!["certificate-authority"], "./ca.crt");
    assertEquals(document.users.get("u")!.tokenFile, "./token");
    assertEquals(document.users.get("u")!.exec?.command, "./bin/plugin");
    // A relative file name anchors in its own (relative) directory.
    assertEquals(
      parseKubeconfig("users: [{name: u, user: {tokenFile: token}}]\n", "kube/config").users
        .get("u")!.tokenFile,
      "kube/token",
    );
    // A file in / gives /token, not //token.
    assertEquals(
      parseKubeconfig("users: [{name: u, user: {tokenFile: token}}]\n", "/config").users.get("u")!
        .tokenFile,
      "/token",
    );
  },
);

Deno.test("kubeconfig document: merge — the first file that names a cluster, user or context wins it", () => {
  const first = parseKubeconfig(
    [
      "clusters: [{name: shared, cluster: {server: https://first}}]",
      "users: [{name: shared, user: {token: first}}]",
      "contexts: [{name: shared, context: {cluster: shared, user: shared, namespace: one}}]",
    ].join("\n"),
    "/a/config",
  );
  const second = parseKubeconfig(
    [
      "clusters: [{name: shared, cluster: {server: https://second}}, {name: own, cluster: {server: https://own}}]",
      "users: [{name: shared, user: {token: second}}, {name: own, user: {token: own}}]",
      "contexts: [{name: shared, context: {cluster: own, user: own}}, {name: own, context: {cluster: own}}]",
    ].join("\n"),
    "/b/config",
  );
  const merged = mergeKubeconfigs([first, second]);
  assertEquals(merged.clusters.get("shared")!.server, "https://first");
  assertEquals(merged.users.get("shared")!.token, "first");
  assertEquals(merged.contexts.get("shared"), {
    cluster: "shared",
    user: "shared",
    namespace: "one",
  });
  assertEquals(merged.clusters.get("own")!.server, "https://own", "new names are added");
  assertEquals(merged.users.get("own")!.token, "own");
  assertEquals(merged.contexts.get("own"), { cluster: "own" });
  // Entries are whole: a later file's fields are not mixed into the winner.
  const reversed = mergeKubeconfigs([second, first]);
  assertEquals(reversed.clusters.get("shared")!.server, "https://second");
  assertEquals(reversed.contexts.get("shared"), { cluster: "own", user: "own" });
});

Deno.test("kubeconfig document: merge — the first file with a current-context chooses it", () => {
  const none = parseKubeconfig(documentText("a", undefined, false));
  const b = parseKubeconfig(documentText("b"));
  const c = parseKubeconfig(documentText("c"));
  assertEquals(mergeKubeconfigs([none, b, c]).currentContext, "xb");
  assertEquals(mergeKubeconfigs([c, b]).currentContext, "xc");
  assertEquals(mergeKubeconfigs([none]).currentContext, undefined);
});

Deno.test("kubeconfig document: merge — each entry keeps the paths of the file that holds it", () => {
  const a = parseKubeconfig(documentText("a", ["    tokenFile: token"]), "/one/config");
  const b = parseKubeconfig(
    documentText("b", ["    tokenFile: token", "    exec: {command: ../bin/p}"]),
    "/two/sub/config",
  );
  const merged = mergeKubeconfigs([a, b]);
  assertEquals(merged.users.get("ua")!.tokenFile, "/one/token");
  assertEquals(merged.users.get("ub")!.tokenFile, "/two/sub/token");
  assertEquals(merged.users.get("ub")!.exec?.command, "/two/sub/../bin/p");
});

Deno.test("kubeconfig document: merge of nothing, or of empty documents, is empty", () => {
  assertEquals(fields(mergeKubeconfigs([])), fields(emptyKubeconfig()));
  assertEquals(
    fields(mergeKubeconfigs([emptyKubeconfig(), parseKubeconfig("")])),
    fields(emptyKubeconfig()),
  );
});

Deno.test("kubeconfig document: merging leaves its inputs as they were", () => {
  const a: KubeconfigDocument = parseKubeconfig(documentText("a"));
  const b = parseKubeconfig(documentText("b"));
  const merged = mergeKubeconfigs([a, b]);
  assertEquals([...merged.clusters.keys()], ["ca", "cb"]);
  assertEquals([...a.clusters.keys()], ["ca"]);
  assertEquals([...b.clusters.keys()], ["cb"]);
});

Deno.test("kubeconfig document: a file naming a cluster, user or context twice is refused, as kubectl refuses it", () => {
  assertEquals(
    formatError(() =>
      parseKubeconfig(
        "clusters:\n- {name: c, cluster: {server: https://one}}\n- {name: c, cluster: {server: https://two}}\n",
        "/k/c",
      )
    ),
    '/k/c: clusters has "c" twice',
  );
  assertEquals(
    formatError(() => parseKubeconfig("users: [{name: u}, {name: v}, {name: u}]\n", "/k/c")),
    '/k/c: users has "u" twice',
  );
  assertEquals(
    formatError(() =>
      parseKubeconfig(
        "contexts: [{name: x, context: {cluster: a}}, {name: x, context: {cluster: b}}]\n",
        "/k/c",
      )
    ),
    '/k/c: contexts has "x" twice',
  );
  // The same name in two lists, or in two files, is no repetition.
  const document = parseKubeconfig(
    "clusters: [{name: x, cluster: {server: https://x}}]\nusers: [{name: x}]\n" +
      "contexts: [{name: x, context: {cluster: x, user: x}}]\n",
  );
  assertEquals(mergeKubeconfigs([document, document]).contexts.get("x"), {
    cluster: "x",
    user: "x",
  });
});
