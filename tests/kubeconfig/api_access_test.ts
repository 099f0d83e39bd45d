/**
 * What a kubeconfig context gives to talk to the API server (core/k8s/api_access.ts): the
 * context's cluster and namespace, and the credentials of its user in each form kubectl accepts
 * — tokens, token files, basic auth, client certificates, credential plugins, the older
 * auth-providers (OIDC refreshed at a local issuer, gcp, azure) and impersonation.
 */
import { Buffer } from "node:buffer";
import { assert, assertEquals, assertMatch, assertRejects, assertThrows } from "../assert.ts";
import {
  ApiAccess,
  CredentialError,
  headerKeyEscape,
  jwtExpired,
  type NamedCluster,
} from "../../core/k8s/api_access.ts";
import { ExecCredentials, type RunCommand } from "../../core/k8s/exec_credential.ts";
import {
  KubeconfigFormatError,
  parseKubeconfig,
  type UserEntry,
} from "../../core/k8s/kubeconfig_document.ts";

const V1 = "client.authentication.k8s.io/v1";
const CA_PEM = "-----BEGIN CERTIFICATE-----\nQ0E=\n-----END CERTIFICATE-----\n";
const CERT_PEM = "-----BEGIN CERTIFICATE-----\nQ0VSVA==\n-----END CERTIFICATE-----\n";
const KEY_PEM = "-----BEGIN PRIVATE KEY-----\nS0VZ\n-----END PRIVATE KEY-----\n";

/** Base64 of the UTF-8 bytes of `text` (what a kubeconfig's `-data` fields hold). */
function b64(text: string): string {
  return Buffer.from(text, "utf8").toString("base64");
}

function base64url(text: string): string {
  return b64(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** A JWT (unsigned: nobody here checks the signature) with these claims. */
function jwt(claims: Record<string, unknown>): string {
  return `${base64url(JSON.stringify({ alg: "RS256", typ: "JWT" }))}.${
    base64url(JSON.stringify(claims))
  }.c2lnbmF0dXJl`;
}

const inSeconds = (seconds: number) => Math.floor(Date.now() / 1000) + seconds;

const CLUSTER: NamedCluster = { name: "lab", server: "https://lab.example:6443" };

/** An access for `user` on CLUSTER, its plugins run by `run`. */
function accessFor(
  user: UserEntry,
  options: { run?: RunCommand; cluster?: NamedCluster; userName?: string } = {},
): ApiAccess {
  return new ApiAccess(
    {
      context: "lab",
      cluster: options.cluster ?? CLUSTER,
      userName: options.userName ?? "alice",
      user,
    },
    new ExecCredentials({ run: options.run ?? (() => Promise.reject(new Error("no plugin"))) }),
  );
}

/** A plugin runner answering ExecCredential `status` each time, counting its runs. */
function plugin(status: (run: number) => Record<string, unknown>) {
  const calls: { command: string; args: string[]; env: Record<string, string> }[] = [];
  const run: RunCommand = (command, args, env) => {
    calls.push({ command, args, env });
    return Promise.resolve({
      code: 0,
      stdout: JSON.stringify({
        apiVersion: V1,
        kind: "ExecCredential",
        status: status(calls.length),
      }),
      stderr: "",
    });
  };
  return { run, calls };
}

/** The CredentialError message `promise` rejects with, checked to be one line. */
async function credentialError(promise: Promise<unknown>): Promise<string> {
  let message = "";
  await assertRejects(promise, (error: unknown) => {
    assert(error instanceof CredentialError, `not a CredentialError: ${error}`);
    message = error.message;
    return true;
  });
  assert(!message.includes("\n"), `more than one line: ${message}`);
  return message;
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "k8stun-api-access-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const KUBECONFIG = `
clusters:
- name: one
  cluster: {server: "https://one.example"}
- name: two
  cluster: {server: "https://two.example"}
users:
- name: alice
  user: {token: alice-token}
contexts:
- name: first
  context: {cluster: one, user: alice, namespace: team}
- name: second
  context: {cluster: two}
- name: broken
  context: {cluster: three, user: alice}
current-context: first
`;

// ---- choosing the context -------------------------------------------------------------------

Deno.test("api access: the current context gives its cluster, user and namespace", async () => {
  const access = ApiAccess.fromText(KUBECONFIG);
  assertEquals(access.context, "first");
  assertEquals(JSON.parse(JSON.stringify(access.cluster)), {
    name: "one",
    server: "https://one.example",
  });
  assertEquals(access.server, "https://one.example");
  assertEquals(access.userName, "alice");
  assertEquals(access.user, { token: "alice-token" });
  assertEquals(access.namespace, "team");
  assertEquals(await access.credentials(), { headers: { Authorization: "Bearer alice-token" } });
});

Deno.test("api access: a named context wins over the current one; the namespace defaults to default", () => {
  const access = ApiAccess.of(parseKubeconfig(KUBECONFIG), "second");
  assertEquals(access.context, "second");
  assertEquals(access.server, "https://two.example");
  assertEquals(access.namespace, "default");
});

Deno.test("api access: a context that does not exist is refused, listing the contexts there are", () => {
  assertThrows(
    () => ApiAccess.fromText(KUBECONFIG, "nope"),
    (error: unknown) =>
      error instanceof KubeconfigFormatError &&
      error.message === 'no context "nope" (contexts: first, second, broken)',
  );
  assertThrows(
    () => ApiAccess.fromText(KUBECONFIG.replace("current-context: first", "")),
    (error: unknown) =>
      error instanceof KubeconfigFormatError &&
      error.message === 'no context "" (contexts: first, second, broken)',
    "no current-context and none asked for",
  );
  assertThrows(
    () => ApiAccess.fromText(""),
    (error: unknown) =>
      error instanceof KubeconfigFormatError && error.message === 'no context "" (contexts: none)',
  );
});

Deno.test("api access: a context naming a cluster that is not defined is refused", () => {
  assertThrows(
    () => ApiAccess.fromText(KUBECONFIG, "broken"),
    (error: unknown) =>
      error instanceof KubeconfigFormatError &&
      error.message === 'context "broken" names cluster "three", which is not defined',
  );
});

Deno.test("api access: a context without a user connects without credentials", async () => {
  const access = ApiAccess.fromText(KUBECONFIG, "second");
  assertEquals(access.userName, "");
  assertEquals(access.user, {});
  assertEquals(await access.credentials(), { headers: {} });
});

Deno.test("api access: a context naming a user that is not defined connects without credentials (as kubectl)", async () => {
  const access = ApiAccess.fromText(
    KUBECONFIG.replace("user: alice, namespace", "user: carol, namespace"),
  );
  assertEquals(access.userName, "carol");
  assertEquals(await access.credentials(), { headers: {} });
});

Deno.test("api access: withUser keeps the context, cluster and namespace", async () => {
  const access = ApiAccess.fromText(KUBECONFIG);
  const other = access.withUser({ token: "other" });
  assertEquals(other.context, "first");
  assertEquals(other.cluster, access.cluster);
  assertEquals(other.userName, "alice");
  assertEquals(other.namespace, "team");
  assertEquals((await other.credentials()).headers, { Authorization: "Bearer other" });
  assertEquals((await access.credentials()).headers, { Authorization: "Bearer alice-token" });
});

// ---- the cluster's CA -----------------------------------------------------------------------

Deno.test("api access: certificate-authority-data is base64 PEM; certificate-authority a file", async () => {
  assertEquals(accessFor({}).certificateAuthority(), undefined);
  const inline = accessFor({}, {
    cluster: { ...CLUSTER, "certificate-authority-data": b64(CA_PEM) },
  });
  assertEquals(inline.certificateAuthority(), CA_PEM);
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/ca.crt`, CA_PEM);
    const fromFile = accessFor({}, {
      cluster: { ...CLUSTER, "certificate-authority": `${dir}/ca.crt` },
    });
    assertEquals(fromFile.certificateAuthority(), CA_PEM);
    const both = accessFor({}, {
      cluster: {
        ...CLUSTER,
        "certificate-authority": `${dir}/missing.crt`,
        "certificate-authority-data": b64(CA_PEM),
      },
    });
    assertEquals(both.certificateAuthority(), CA_PEM, "the inline data wins over the file");
  });
});

Deno.test("api access: an unreadable certificate-authority file is a CredentialError naming it", () => {
  const access = accessFor({}, {
    cluster: { ...CLUSTER, "certificate-authority": "/nonexistent/ca.crt" },
  });
  assertThrows(
    () => access.certificateAuthority(),
    (error: unknown) =>
      error instanceof CredentialError &&
      /^cannot read cluster "lab" certificate-authority \/nonexistent\/ca\.crt: /.test(
        error.message,
      ),
  );
  const garbled = accessFor({}, {
    cluster: { ...CLUSTER, "certificate-authority-data": "not base64 !!" },
  });
  assertThrows(
    () => garbled.certificateAuthority(),
    (error: unknown) =>
      error instanceof CredentialError &&
      error.message === 'cluster "lab" certificate-authority-data is not base64',
  );
});

// ---- tokens ---------------------------------------------------------------------------------

Deno.test("api access: a token is sent as a bearer token", async () => {
  assertEquals(await accessFor({ token: "abc" }).credentials(), {
    headers: { Authorization: "Bearer abc" },
  });
});

Deno.test("api access: a tokenFile is read again for every connection, so a rotated token is used", async () => {
  await withTempDir(async (dir) => {
    const file = `${dir}/token`;
    await Deno.writeTextFile(file, "first\n");
    const access = accessFor({ tokenFile: file });
    assertEquals((await access.credentials()).headers, { Authorization: "Bearer first" });
    await Deno.writeTextFile(file, "  second  \n");
    assertEquals((await access.credentials()).headers, { Authorization: "Bearer second" });
  });
});

Deno.test("api access: a tokenFile relative to its kubeconfig is found next to it", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/token`, "from-file");
    const document = parseKubeconfig(
      [
        "clusters: [{name: c, cluster: {server: https://c}}]",
        "users: [{name: u, user: {tokenFile: token}}]",
        "contexts: [{name: x, context: {cluster: c, user: u}}]",
        "current-context: x",
      ].join("\n"),
      `${dir}/config`,
    );
    const { headers } = await ApiAccess.of(document).credentials();
    assertEquals(headers, { Authorization: "Bearer from-file" });
  });
});

Deno.test("api access: a token wins over a tokenFile (which is then not read)", async () => {
  const access = accessFor({ token: "inline", tokenFile: "/nonexistent/token" });
  assertEquals((await access.credentials()).headers, { Authorization: "Bearer inline" });
});

Deno.test("api access: an unreadable tokenFile is a CredentialError naming the file", async () => {
  const message = await credentialError(
    accessFor({ tokenFile: "/nonexistent/token" }).credentials(),
  );
  assertMatch(message, /^cannot read tokenFile \/nonexistent\/token: /);
});

// ---- basic auth -----------------------------------------------------------------------------

Deno.test("api access: username and password are basic auth, base64 of user:pass in UTF-8", async () => {
  assertEquals((await accessFor({ username: "admin", password: "s3cret" }).credentials()).headers, {
    Authorization: `Basic ${btoa("admin:s3cret")}`,
  });
  const utf8 = await accessFor({ username: "jürgen", password: "pässwörd✓" }).credentials();
  assertEquals(utf8.headers, { Authorization: `Basic ${b64("jürgen:pässwörd✓")}` });
  assertEquals(
    Buffer.from((utf8.headers.Authorization as string).slice(6), "base64").toString("utf8"),
    "jürgen:pässwörd✓",
  );
  assertEquals((await accessFor({ username: "only" }).credentials()).headers, {
    Authorization: `Basic ${btoa("only:")}`,
  });
});

Deno.test("api access: a bearer token wins over basic auth", async () => {
  const access = accessFor({ token: "t", username: "u", password: "p" });
  assertEquals((await access.credentials()).headers, { Authorization: "Bearer t" });
});

// ---- client certificates --------------------------------------------------------------------

Deno.test("api access: client-certificate-data and client-key-data are base64 PEM", async () => {
  const access = accessFor({
    "client-certificate-data": b64(CERT_PEM),
    "client-key-data": b64(KEY_PEM),
  });
  assertEquals(await access.credentials(), { headers: {}, cert: CERT_PEM, key: KEY_PEM });
});

Deno.test("api access: client-certificate and client-key may be files", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/u.crt`, CERT_PEM);
    await Deno.writeTextFile(`${dir}/u.key`, KEY_PEM);
    const access = accessFor({
      "client-certificate": `${dir}/u.crt`,
      "client-key": `${dir}/u.key`,
      token: "and-a-token",
    });
    assertEquals(await access.credentials(), {
      headers: { Authorization: "Bearer and-a-token" },
      cert: CERT_PEM,
      key: KEY_PEM,
    });
  });
});

Deno.test("api access: an unreadable client certificate or key file is a CredentialError naming it", async () => {
  assertMatch(
    await credentialError(
      accessFor({ "client-certificate": "/nonexistent/u.crt", "client-key-data": b64(KEY_PEM) })
        .credentials(),
    ),
    /^cannot read user "alice" client-certificate \/nonexistent\/u\.crt: /,
  );
  assertMatch(
    await credentialError(
      accessFor({ "client-certificate-data": b64(CERT_PEM), "client-key": "/nonexistent/u.key" })
        .credentials(),
    ),
    /^cannot read user "alice" client-key \/nonexistent\/u\.key: /,
  );
  assertEquals(
    await credentialError(accessFor({ "client-key-data": "%%%" }).credentials()),
    'user "alice" client-key-data is not base64',
  );
});

// ---- impersonation --------------------------------------------------------------------------

Deno.test("api access: as, as-uid, as-groups and as-user-extra are the Impersonate-* headers", async () => {
  const access = accessFor({
    token: "t",
    as: "bob",
    "as-uid": "1234",
    "as-groups": ["dev", "system:masters"],
    "as-user-extra": { reason: ["debugging", "on call"], "example.com/scopes": ["view"] },
  });
  assertEquals((await access.credentials()).headers, {
    Authorization: "Bearer t",
    "Impersonate-User": "bob",
    "Impersonate-Uid": "1234",
    "Impersonate-Group": ["dev", "system:masters"],
    "Impersonate-Extra-reason": ["debugging", "on call"],
    "Impersonate-Extra-example.com%2Fscopes": ["view"],
  });
});

Deno.test("api access: no Impersonate-Group header for an empty as-groups", async () => {
  assertEquals((await accessFor({ as: "bob", "as-groups": [] }).credentials()).headers, {
    "Impersonate-User": "bob",
  });
});

// ---- credential plugins ---------------------------------------------------------------------

Deno.test("api access: an exec plugin's token is the bearer token, kept while it has no expiry", async () => {
  const { run, calls } = plugin((n) => ({ token: `plugin-${n}` }));
  const access = accessFor({ exec: { command: "get-token", args: ["--x"], apiVersion: V1 } }, {
    run,
  });
  assertEquals((await access.credentials()).headers, { Authorization: "Bearer plugin-1" });
  assertEquals((await access.credentials()).headers, { Authorization: "Bearer plugin-1" });
  assertEquals(calls.length, 1, "a credential without expirationTimestamp is reused");
  assertEquals(calls[0].command, "get-token");
  assertEquals(calls[0].args, ["--x"]);
});

Deno.test("api access: rejected() (a 401) makes the next connection run the plugin again", async () => {
  const { run, calls } = plugin((n) => ({ token: `plugin-${n}` }));
  const access = accessFor({ exec: { command: "get-token", apiVersion: V1 } }, { run });
  assertEquals((await access.credentials()).headers, { Authorization: "Bearer plugin-1" });
  access.rejected();
  assertEquals((await access.credentials()).headers, { Authorization: "Bearer plugin-2" });
  assertEquals((await access.credentials()).headers, { Authorization: "Bearer plugin-2" });
  assertEquals(calls.length, 2);
});

Deno.test("api access: an exec plugin's client certificate and key are the connection's", async () => {
  const { run } = plugin(() => ({ clientCertificateData: CERT_PEM, clientKeyData: KEY_PEM }));
  const access = accessFor({
    exec: { command: "get-cert", apiVersion: V1 },
    "client-certificate-data": b64(
      "-----BEGIN CERTIFICATE-----\nb2xk\n-----END CERTIFICATE-----\n",
    ),
    "client-key-data": b64("-----BEGIN PRIVATE KEY-----\nb2xk\n-----END PRIVATE KEY-----\n"),
  }, { run });
  assertEquals(await access.credentials(), { headers: {}, cert: CERT_PEM, key: KEY_PEM });
});

Deno.test("api access: the older auth-provider.config.exec runs as a credential plugin", async () => {
  const { run, calls } = plugin(() => ({ token: "from-provider-exec" }));
  const access = accessFor({
    "auth-provider": { name: "oidc", config: { exec: { command: "legacy", apiVersion: V1 } } },
  }, { run });
  assertEquals((await access.credentials()).headers, {
    Authorization: "Bearer from-provider-exec",
  });
  assertEquals(calls[0].command, "legacy");
});

Deno.test("api access: a failing plugin's error reaches the caller", async () => {
  const access = accessFor({ exec: { command: "missing-plugin", apiVersion: V1 } }, {
    run: () => Promise.reject(new Deno.errors.NotFound("missing-plugin")),
  });
  await assertRejects(
    () => access.credentials(),
    /credential plugin "missing-plugin" was not found/,
  );
});

Deno.test("api access: provideClusterInfo gives the plugin the server, the CA and the exec extension", async () => {
  const { run, calls } = plugin(() => ({ token: "t" }));
  const cluster: NamedCluster = {
    name: "lab",
    server: "https://lab.example:6443",
    "certificate-authority-data": b64(CA_PEM),
    "tls-server-name": "api.lab",
    "proxy-url": "http://proxy:3128",
    "insecure-skip-tls-verify": true,
    extensions: [
      { name: "other", extension: { ignored: true } },
      { name: "client.authentication.k8s.io/exec", extension: { audience: "lab", n: 1 } },
    ],
  };
  const access = accessFor(
    { exec: { command: "get-token", apiVersion: V1, provideClusterInfo: true } },
    { run, cluster },
  );
  await access.credentials();
  const info = JSON.parse(calls[0].env.KUBERNETES_EXEC_INFO);
  assertEquals(info, {
    apiVersion: V1,
    kind: "ExecCredential",
    spec: {
      interactive: false,
      cluster: {
        server: "https://lab.example:6443",
        "tls-server-name": "api.lab",
        "insecure-skip-tls-verify": true,
        "certificate-authority-data": b64(CA_PEM),
        "proxy-url": "http://proxy:3128",
        config: { audience: "lab", n: 1 },
      },
    },
  });
});

Deno.test("api access: without provideClusterInfo the plugin gets no cluster", async () => {
  const { run, calls } = plugin(() => ({ token: "t" }));
  await accessFor({ exec: { command: "get-token", apiVersion: V1 } }, { run }).credentials();
  assertEquals(JSON.parse(calls[0].env.KUBERNETES_EXEC_INFO).spec, { interactive: false });
});

Deno.test("api access: provideClusterInfo passes a CA file's bytes, non-ASCII comments included", async () => {
  // CA bundles (Mozilla's, as distributions ship it) carry "# Issuer:" lines in UTF-8.
  const bundle = `# Issuer: CN=NetLock Arany (Class Gold) Főtanúsítvány\n${CA_PEM}`;
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/ca.crt`, bundle);
    const { run, calls } = plugin(() => ({ token: "t" }));
    const access = accessFor(
      { exec: { command: "get-token", apiVersion: V1, provideClusterInfo: true } },
      { run, cluster: { ...CLUSTER, "certificate-authority": `${dir}/ca.crt` } },
    );
    assertEquals((await access.credentials()).headers, { Authorization: "Bearer t" });
    const data = JSON.parse(calls[0].env.KUBERNETES_EXEC_INFO).spec.cluster[
      "certificate-authority-data"
    ];
    assertEquals(Buffer.from(data, "base64").toString("utf8"), bundle);
  });
});

// ---- auth-provider: oidc --------------------------------------------------------------------

/** A local OIDC issuer: discovery at /.well-known/openid-configuration, tokens at /token. */
function oidcIssuer(
  answer: (body: URLSearchParams, n: number) => Response | Promise<Response>,
) {
  const requests: URLSearchParams[] = [];
  const server: Deno.HttpServer<Deno.NetAddr> = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen() {},
  }, async (request): Promise<Response> => {
    const url = new URL(request.url);
    if (url.pathname === "/.well-known/openid-configuration") {
      return Response.json({ issuer: issuer(), token_endpoint: `${issuer()}/token` });
    }
    if (url.pathname === "/token" && request.method === "POST") {
      const body = new URLSearchParams(await request.text());
      requests.push(body);
      return answer(body, requests.length);
    }
    return new Response("not found", { status: 404 });
  });
  const issuer = (): string => `http://127.0.0.1:${server.addr.port}`;
  return { server, issuer: issuer(), requests };
}

function oidcUser(config: Record<string, unknown>): UserEntry {
  return { "auth-provider": { name: "oidc", config } };
}

Deno.test("api access: an unexpired OIDC id-token is the bearer token", async () => {
  const idToken = jwt({ sub: "alice", exp: inSeconds(3600) });
  const access = accessFor(oidcUser({ "id-token": idToken, "refresh-token": "r" }));
  assertEquals((await access.credentials()).headers, { Authorization: `Bearer ${idToken}` });
});

Deno.test("api access: an expired OIDC id-token without a refresh-token says to log in again", async () => {
  const expired = jwt({ exp: inSeconds(-60) });
  const message = await credentialError(
    accessFor(oidcUser({ "id-token": expired, "idp-issuer-url": "https://idp" })).credentials(),
  );
  assertMatch(message, /^user "alice": the OIDC id-token has expired .*log in again/);
  assert(!message.includes(expired), "the token stays out of the error");
  // A refresh-token without an issuer to take it to is no better.
  assertMatch(
    await credentialError(
      accessFor(oidcUser({ "id-token": expired, "refresh-token": "r" })).credentials(),
    ),
    /log in again/,
  );
  // Neither is no id-token at all.
  assertMatch(await credentialError(accessFor(oidcUser({})).credentials()), /log in again/);
});

Deno.test("api access: an expired OIDC id-token is refreshed at the issuer, and the new one reused", async () => {
  const fresh = jwt({ sub: "alice", exp: inSeconds(3600) });
  const idp = oidcIssuer(() => Response.json({ id_token: fresh, refresh_token: "rotated" }));
  try {
    const access = accessFor(oidcUser({
      "id-token": jwt({ exp: inSeconds(-60) }),
      "refresh-token": "original",
      "idp-issuer-url": `${idp.issuer}/`,
      "client-id": "k8s",
      "client-secret": "shh",
    }));
    assertEquals((await access.credentials()).headers, { Authorization: `Bearer ${fresh}` });
    assertEquals(idp.requests.length, 1);
    const body = idp.requests[0];
    assertEquals(body.get("grant_type"), "refresh_token");
    assertEquals(body.get("refresh_token"), "original");
    assertEquals(body.get("client_id"), "k8s");
    assertEquals(body.get("client_secret"), "shh");
    assertEquals((await access.credentials()).headers, { Authorization: `Bearer ${fresh}` });
    assertEquals(idp.requests.length, 1, "the refreshed id-token is reused while unexpired");
  } finally {
    await idp.server.shutdown();
  }
});

Deno.test("api access: an OIDC token endpoint answering megabytes, or no JSON object, fails the refresh with one line", async () => {
  const answers = [
    () => new Response(new Uint8Array(5 * 1024 * 1024).fill(0x20)), // 5 MiB of spaces
    () => new Response("<html>sign in</html>"),
    () => Response.json("a string"),
  ];
  const expected = [/answered more than 1 MiB/, /not JSON/, /not an object/];
  for (const [i, answer] of answers.entries()) {
    const idp = oidcIssuer(answer);
    try {
      const access = accessFor(oidcUser({
        "id-token": jwt({ exp: inSeconds(-60) }),
        "refresh-token": "original",
        "idp-issuer-url": idp.issuer,
      }));
      assertMatch(await credentialError(access.credentials()), expected[i]);
    } finally {
      await idp.server.shutdown();
    }
  }
});

Deno.test("api access: a refreshed OIDC id-token that expires in turn is refreshed with the rotated refresh-token", async () => {
  const idp = oidcIssuer((_, n) =>
    Response.json({
      id_token: jwt({ n, exp: inSeconds(n === 1 ? 5 : 3600) }), // the first is within the margin
      refresh_token: `rotated-${n}`,
    })
  );
  try {
    const access = accessFor(oidcUser({
      "id-token": jwt({ exp: inSeconds(-60) }),
      "refresh-token": "original",
      "idp-issuer-url": idp.issuer,
      "client-id": "k8s",
    }));
    await access.credentials();
    await access.credentials();
    assertEquals(idp.requests.map((body) => body.get("refresh_token")), [
      "original",
      "rotated-1",
    ]);
    assertEquals(idp.requests[1].get("client_secret"), null, "no client-secret, none sent");
  } finally {
    await idp.server.shutdown();
  }
});

Deno.test("api access: after rejected(), OIDC refreshes again with the rotated refresh-token, not the spent one", async () => {
  const idp = oidcIssuer((_, n) =>
    Response.json({ id_token: jwt({ n, exp: inSeconds(3600) }), refresh_token: `rotated-${n}` })
  );
  try {
    const access = accessFor(oidcUser({
      "id-token": jwt({ exp: inSeconds(-60) }),
      "refresh-token": "original",
      "idp-issuer-url": idp.issuer,
      "client-id": "k8s",
    }));
    const first = (await access.credentials()).headers.Authorization;
    access.rejected();
    const second = (await access.credentials()).headers.Authorization;
    assert(first !== second, "the refused id-token is not sent again");
    assertEquals(idp.requests.map((body) => body.get("refresh_token")), [
      "original",
      "rotated-1",
    ]);
  } finally {
    await idp.server.shutdown();
  }
});

Deno.test("api access: concurrent connections share one OIDC refresh", async () => {
  const fresh = jwt({ exp: inSeconds(3600) });
  const idp = oidcIssuer(async () => {
    await new Promise((resolve) => setTimeout(resolve, 20));
    return Response.json({ id_token: fresh, refresh_token: "rotated" });
  });
  try {
    const access = accessFor(oidcUser({
      "id-token": jwt({ exp: inSeconds(-60) }),
      "refresh-token": "original",
      "idp-issuer-url": idp.issuer,
      "client-id": "k8s",
    }));
    const all = await Promise.all([1, 2, 3].map(() => access.credentials()));
    for (const { headers } of all) assertEquals(headers, { Authorization: `Bearer ${fresh}` });
    assertEquals(idp.requests.length, 1, "a refresh-token may be spent only once");
  } finally {
    await idp.server.shutdown();
  }
});

Deno.test("api access: an issuer refusing the refresh is a CredentialError naming the issuer", async () => {
  const idp = oidcIssuer(() => Response.json({ error: "invalid_grant" }, { status: 400 }));
  try {
    const access = accessFor(oidcUser({
      "id-token": jwt({ exp: inSeconds(-60) }),
      "refresh-token": "spent",
      "idp-issuer-url": idp.issuer,
      "client-id": "k8s",
    }));
    const message = await credentialError(access.credentials());
    assertEquals(
      message,
      `user "alice": renewing the OIDC id-token at ${idp.issuer} failed: ` +
        "the token endpoint answered 400",
    );
    assert(!message.includes("spent"), "the refresh-token stays out of the error");
    // A failed refresh is not kept: the next connection asks again.
    await credentialError(access.credentials());
    assertEquals(idp.requests.length, 2);
  } finally {
    await idp.server.shutdown();
  }
});

Deno.test("api access: an issuer without discovery, or answering without an id_token, is a CredentialError", async () => {
  const idp = oidcIssuer(() => Response.json({ access_token: "no-id-token" }));
  try {
    const user = (issuer: string) =>
      oidcUser({
        "id-token": jwt({ exp: inSeconds(-60) }),
        "refresh-token": "r",
        "idp-issuer-url": issuer,
      });
    assertEquals(
      await credentialError(accessFor(user(idp.issuer)).credentials()),
      `user "alice": renewing the OIDC id-token at ${idp.issuer} failed: the answer has no id_token`,
    );
    assertEquals(
      await credentialError(accessFor(user(`${idp.issuer}/elsewhere`)).credentials()),
      `user "alice": renewing the OIDC id-token at ${idp.issuer}/elsewhere failed: ` +
        "discovery answered 404",
    );
  } finally {
    await idp.server.shutdown();
  }
});

// ---- auth-provider: gcp, azure, others ------------------------------------------------------

Deno.test("api access: a gcp auth-provider's unexpired access-token is the bearer token", async () => {
  const expiry = new Date(Date.now() + 3_600_000).toISOString();
  const access = accessFor({
    "auth-provider": { name: "gcp", config: { "access-token": "ya29.x", expiry } },
  });
  assertEquals((await access.credentials()).headers, { Authorization: "Bearer ya29.x" });
  // Go writes RFC 3339 with nanoseconds.
  const nanos = accessFor({
    "auth-provider": {
      name: "gcp",
      config: { "access-token": "ya29.y", expiry: "2999-03-07T17:55:26.112164372Z" },
    },
  });
  assertEquals((await nanos.credentials()).headers, { Authorization: "Bearer ya29.y" });
});

Deno.test("api access: an expired gcp access-token names gke-gcloud-auth-plugin, its replacement", async () => {
  const access = accessFor({
    "auth-provider": {
      name: "gcp",
      config: { "access-token": "ya29.x", expiry: "2020-01-01T00:00:00Z" },
    },
  });
  const message = await credentialError(access.credentials());
  assertMatch(message, /^user "alice": the gcp auth-provider's token has expired/);
  assertMatch(message, /gke-gcloud-auth-plugin/);
  assertMatch(
    await credentialError(accessFor({ "auth-provider": { name: "gcp" } }).credentials()),
    /gke-gcloud-auth-plugin/,
    "no access-token at all",
  );
});

Deno.test("api access: an azure access-token is used until expires-on (epoch seconds), then kubelogin is named", async () => {
  const valid = accessFor({
    "auth-provider": {
      name: "azure",
      config: { "access-token": "eyAz", "expires-on": String(inSeconds(3600)) },
    },
  });
  assertEquals((await valid.credentials()).headers, { Authorization: "Bearer eyAz" });
  const expired = accessFor({
    "auth-provider": {
      name: "azure",
      config: { "access-token": "eyAz", "expires-on": String(inSeconds(-3600)) },
    },
  });
  const message = await credentialError(expired.credentials());
  assertMatch(message, /^user "alice": the azure auth-provider's token has expired/);
  assertMatch(message, /kubelogin/);
});

Deno.test("api access: an unknown auth-provider is a CredentialError pointing to exec plugins", async () => {
  assertEquals(
    await credentialError(
      accessFor({ "auth-provider": { name: "openstack", config: {} } }).credentials(),
    ),
    'user "alice": auth-provider "openstack" is not supported; use an exec credential plugin',
  );
});

// ---- jwtExpired -----------------------------------------------------------------------------

Deno.test("jwtExpired: a token that is not a JWT never expires", () => {
  assertEquals(jwtExpired("opaque-token"), false);
  assertEquals(jwtExpired(""), false);
  assertEquals(jwtExpired("a.!!!.c"), false);
  assertEquals(jwtExpired(`x.${base64url("not json")}.y`), false);
  assertEquals(jwtExpired(jwt({ sub: "no exp" })), false);
  assertEquals(jwtExpired(jwt({ exp: "1" })), false, "an exp that is not a number");
});

Deno.test("jwtExpired: exp in the past, or within 10 s, counts as expired", () => {
  const now = Date.parse("2030-01-01T00:00:00Z");
  const at = (seconds: number) => jwt({ exp: now / 1000 + seconds });
  assertEquals(jwtExpired(at(-1), now), true);
  assertEquals(jwtExpired(at(0), now), true);
  assertEquals(jwtExpired(at(9), now), true);
  assertEquals(jwtExpired(at(10), now), false, "exactly the margin is still good");
  assertEquals(jwtExpired(at(11), now), false);
  assertEquals(jwtExpired(at(3600), now), false);
  // base64url payloads (- and _) without padding decode.
  const claims = { exp: now / 1000 + 60, name: "??>>~~" };
  assert(/[-_]/.test(base64url(JSON.stringify(claims))), "the payload has base64url characters");
  assertEquals(jwtExpired(jwt(claims), now), false);
  assertEquals(jwtExpired(jwt({ ...claims, exp: now / 1000 - 60 }), now), true);
});

Deno.test("api access: a token written in the kubeconfig wins, and the credential plugin beside it is not run", async () => {
  const { run, calls } = plugin(() => ({ token: "from-plugin" }));
  const access = accessFor({
    token: "static",
    exec: { command: "plugin", apiVersion: V1, interactiveMode: "Never" },
  }, { run });
  assertEquals((await access.credentials()).headers["Authorization"], "Bearer static");
  assertEquals(calls.length, 0, "the plugin ran although its token would be overruled");
});

Deno.test("api access: a client certificate without its key (or a key alone) is refused, naming the user", async () => {
  const certOnly = accessFor({ "client-certificate-data": b64(CERT_PEM) });
  assertMatch(
    await credentialError(certOnly.credentials()),
    /"alice".*certificate without its key/,
  );
  const keyOnly = accessFor({ "client-key-data": b64(KEY_PEM) });
  assertMatch(await credentialError(keyOnly.credentials()), /"alice".*key without its certificate/);
});

Deno.test("api access: impersonated extra keys are escaped as kubectl escapes header names: token characters kept but %, everything else %XX of its UTF-8 bytes", () => {
  assertEquals(headerKeyEscape("reason"), "reason");
  assertEquals(headerKeyEscape("example.com/scopes"), "example.com%2Fscopes");
  assertEquals(headerKeyEscape("a+b|c~d#e$f&g^h`i'j*k!l"), "a+b|c~d#e$f&g^h`i'j*k!l");
  assertEquals(headerKeyEscape("(x) y%z"), "%28x%29%20y%25z");
  assertEquals(headerKeyEscape("é"), "%C3%A9");
});

Deno.test("api access: an OIDC refresh trusts idp-certificate-authority given as a file (a missing one is a CredentialError naming it)", async () => {
  const access = accessFor({
    "auth-provider": {
      name: "oidc",
      config: {
        "id-token": jwt({ exp: inSeconds(-60) }),
        "refresh-token": "r",
        "idp-issuer-url": "https://issuer.example",
        "idp-certificate-authority": "/nonexistent/idp-ca.pem",
      },
    },
  });
  assertMatch(
    await credentialError(access.credentials()),
    /idp-certificate-authority \/nonexistent\/idp-ca\.pem/,
  );
});
