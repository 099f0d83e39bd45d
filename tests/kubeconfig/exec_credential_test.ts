/**
 * Credential plugins (core/k8s/exec_credential.ts): the plugin's environment, the checks on its
 * answer, how long an answer is kept, and errors a user can act on. Most tests replace the
 * command runner; the last ones run small shell scripts through the real one.
 */
import { assert, assertEquals, assertMatch, assertRejects } from "../assert.ts";
import {
  type ExecClusterInfo,
  type ExecConfig,
  ExecCredentialError,
  ExecCredentials,
  parseRfc3339,
  type RunCommand,
} from "../../core/k8s/exec_credential.ts";

const V1 = "client.authentication.k8s.io/v1";
const V1BETA1 = "client.authentication.k8s.io/v1beta1";
const SECRET = "s3cr3t-token-value";
const NOW = Date.parse("2030-01-01T00:00:00Z");

interface Call {
  command: string;
  args: string[];
  env: Record<string, string>;
  timeoutMs: number;
}

type Answer = { code?: number; stdout?: string; stderr?: string };

/** A runner that records its calls and answers each with `answer()`. */
function fakeRunner(
  answer: (call: Call) => Answer | Promise<Answer>,
): { run: RunCommand; calls: Call[] } {
  const calls: Call[] = [];
  const run: RunCommand = async (command, args, env, timeoutMs) => {
    const call = { command, args, env, timeoutMs };
    calls.push(call);
    const result = await answer(call);
    return { code: result.code ?? 0, stdout: result.stdout ?? "", stderr: result.stderr ?? "" };
  };
  return { run, calls };
}

/** The stdout of a plugin answering `status`. */
function credential(status: unknown, apiVersion = V1, kind = "ExecCredential"): string {
  return JSON.stringify({ apiVersion, kind, status });
}

const tokenAnswer = (status: Record<string, unknown> = {}) => () => ({
  stdout: credential({ token: SECRET, ...status }),
});

const EXEC: ExecConfig = { command: "get-token", args: ["--cluster", "one"], apiVersion: V1 };

/** The error `promise` rejects with, checked to be an ExecCredentialError. */
async function failure(promise: Promise<unknown>): Promise<string> {
  let message = "";
  await assertRejects(promise, (error: unknown) => {
    assert(error instanceof ExecCredentialError, `not an ExecCredentialError: ${error}`);
    message = error.message;
    return true;
  });
  assert(!message.includes("\n"), `more than one line: ${message}`);
  assert(!message.includes(SECRET), `the token is in the error: ${message}`);
  return message;
}

Deno.test("exec credential: command, args and the process environment", async () => {
  const { run, calls } = fakeRunner(tokenAnswer());
  const status = await new ExecCredentials({ run, now: () => NOW }).get("alice", EXEC);
  assertEquals(status, { token: SECRET });
  assertEquals(calls.length, 1);
  assertEquals(calls[0].command, "get-token");
  assertEquals(calls[0].args, ["--cluster", "one"]);
  assertEquals(calls[0].timeoutMs, 60_000);
  const path = Deno.env.get("PATH");
  if (path !== undefined) assertEquals(calls[0].env.PATH, path);
});

Deno.test("exec credential: KUBERNETES_EXEC_INFO has no cluster by default", async () => {
  const { run, calls } = fakeRunner(tokenAnswer());
  const cluster: ExecClusterInfo = { server: "https://k8s.example:6443" };
  await new ExecCredentials({ run }).get("alice", EXEC, cluster);
  assertEquals(JSON.parse(calls[0].env.KUBERNETES_EXEC_INFO), {
    apiVersion: V1,
    kind: "ExecCredential",
    spec: { interactive: false },
  });
});

Deno.test("exec credential: KUBERNETES_EXEC_INFO has the cluster if asked", async () => {
  const { run, calls } = fakeRunner(() => ({ stdout: credential({ token: SECRET }, V1BETA1) }));
  const cluster: ExecClusterInfo = {
    server: "https://k8s.example:6443",
    "tls-server-name": "k8s.internal",
    "certificate-authority-data": btoa("-----BEGIN CERTIFICATE-----"),
    config: { audience: "k8s" },
  };
  const exec = { ...EXEC, apiVersion: V1BETA1, provideClusterInfo: true };
  await new ExecCredentials({ run }).get("alice", exec, cluster);
  assertEquals(JSON.parse(calls[0].env.KUBERNETES_EXEC_INFO), {
    apiVersion: V1BETA1,
    kind: "ExecCredential",
    spec: { interactive: false, cluster },
  });
});

Deno.test("exec credential: exec.env goes on top of the process environment", async () => {
  const { run, calls } = fakeRunner(tokenAnswer());
  const exec: ExecConfig = {
    ...EXEC,
    env: [
      { name: "PATH", value: "/opt/plugin/bin" },
      { name: "PLUGIN_PROFILE", value: "prod" },
      { name: "KUBERNETES_EXEC_INFO", value: "not what the plugin gets" },
    ],
  };
  await new ExecCredentials({ run }).get("alice", exec);
  assertEquals(calls[0].env.PATH, "/opt/plugin/bin");
  assertEquals(calls[0].env.PLUGIN_PROFILE, "prod");
  assertEquals(JSON.parse(calls[0].env.KUBERNETES_EXEC_INFO).kind, "ExecCredential");
});

Deno.test("exec credential: without expirationTimestamp, kept until invalidated", async () => {
  const { run, calls } = fakeRunner(tokenAnswer());
  const plugins = new ExecCredentials({ run, now: () => NOW });
  await plugins.get("alice", EXEC);
  await plugins.get("alice", EXEC);
  assertEquals(calls.length, 1);
  plugins.invalidate("alice");
  assertEquals(await plugins.get("alice", EXEC), { token: SECRET });
  assertEquals(calls.length, 2);
});

Deno.test("exec credential: kept while it expires more than 10 s ahead", async () => {
  const expirationTimestamp = "2030-01-01T00:01:00Z";
  const { run, calls } = fakeRunner(tokenAnswer({ expirationTimestamp }));
  let now = NOW;
  const plugins = new ExecCredentials({ run, now: () => now });
  assertEquals(await plugins.get("alice", EXEC), { token: SECRET, expirationTimestamp });
  now = NOW + 49_000; // 11 s left
  await plugins.get("alice", EXEC);
  assertEquals(calls.length, 1);
  now = NOW + 50_500; // 9.5 s left: a connection could outlive it
  await plugins.get("alice", EXEC);
  assertEquals(calls.length, 2);
});

Deno.test("exec credential: expiring within 10 s: used once, then fetched again", async () => {
  const { run, calls } = fakeRunner(tokenAnswer({ expirationTimestamp: "2030-01-01T00:00:05Z" }));
  const plugins = new ExecCredentials({ run, now: () => NOW });
  assertEquals((await plugins.get("alice", EXEC)).token, SECRET);
  await plugins.get("alice", EXEC);
  assertEquals(calls.length, 2);
});

Deno.test("exec credential: an unparsable expirationTimestamp counts as expired", async () => {
  const { run, calls } = fakeRunner(tokenAnswer({ expirationTimestamp: "next tuesday" }));
  const plugins = new ExecCredentials({ run, now: () => NOW });
  assertEquals(await plugins.get("alice", EXEC), {
    token: SECRET,
    expirationTimestamp: "next tuesday",
  });
  await plugins.get("alice", EXEC);
  assertEquals(calls.length, 2);
});

Deno.test("exec credential: RFC 3339 timestamps with offsets and fractions", () => {
  assertEquals(parseRfc3339("2030-01-01T00:00:00Z"), NOW);
  assertEquals(parseRfc3339("2030-01-01T01:30:00+01:30"), NOW);
  assertEquals(parseRfc3339("2029-12-31T23:00:00.5-01:00"), NOW + 500);
  assertEquals(parseRfc3339("2030-01-01t00:00:00.123456789z"), NOW + 123); // whole ms
  for (const bad of ["2030-01-01", "2030-02-30T00:00:00Z", "2030-01-01T24:00:00Z", "1893456000"]) {
    assertEquals(parseRfc3339(bad), undefined, bad);
  }
});

Deno.test("exec credential: invalidate forgets only that user", async () => {
  const { run, calls } = fakeRunner(tokenAnswer());
  const plugins = new ExecCredentials({ run });
  await plugins.get("alice", EXEC);
  await plugins.get("bob", EXEC);
  plugins.invalidate("alice");
  await plugins.get("alice", EXEC);
  await plugins.get("bob", EXEC);
  assertEquals(calls.length, 3);
});

Deno.test("exec credential: changed exec settings run the plugin again", async () => {
  const { run, calls } = fakeRunner(tokenAnswer());
  const plugins = new ExecCredentials({ run });
  await plugins.get("alice", EXEC);
  await plugins.get("alice", { ...EXEC, args: ["--cluster", "two"] });
  assertEquals(calls.map((c) => c.args[1]), ["one", "two"]);
});

Deno.test("exec credential: concurrent gets share one run of the plugin", async () => {
  let release = () => {};
  const gate = new Promise<void>((resolve) => release = resolve);
  const { run, calls } = fakeRunner(async () => {
    await gate;
    return { stdout: credential({ token: SECRET }) };
  });
  const plugins = new ExecCredentials({ run });
  const gets = [1, 2, 3].map(() => plugins.get("alice", EXEC));
  // Refused connections invalidate while the run is under way: they join it.
  plugins.invalidate("alice");
  gets.push(plugins.get("alice", EXEC));
  release();
  const statuses = await Promise.all(gets);
  assertEquals(calls.length, 1);
  assert(statuses.every((s) => s.token === SECRET));
});

Deno.test("exec credential: a failed run is not kept", async () => {
  let fail = true;
  const { run, calls } = fakeRunner(() =>
    fail ? { code: 1, stderr: "error: token endpoint unreachable\n" } : tokenAnswer()()
  );
  const plugins = new ExecCredentials({ run });
  const message = await failure(plugins.get("alice", EXEC));
  const plugin = 'kubeconfig user "alice": credential plugin "get-token"';
  assertEquals(
    message.startsWith(`${plugin} failed with exit code 1: error: token endpoint`),
    true,
  );
  fail = false;
  assertEquals(await plugins.get("alice", EXEC), { token: SECRET });
  assertEquals(calls.length, 2);
});

Deno.test("exec credential: a failure quotes the last lines of stderr, on one line", async () => {
  const stderr = [
    "starting",
    "\x1b[31mstep 1\x1b[0m",
    "step 2",
    "step 3",
    "error: refresh token expired",
    "",
  ].join("\n");
  const { run } = fakeRunner(() => ({ code: 2, stderr }));
  const message = await failure(new ExecCredentials({ run }).get("alice", EXEC));
  assertMatch(message, /exit code 2: step 2 \/ step 3 \/ error: refresh token expired/);
  assert(!message.includes("starting"), message);
  assertMatch(message, /kubectl get ns/);
});

Deno.test("exec credential: a missing command names it, with the installHint", async () => {
  const { run } = fakeRunner(() => Promise.reject(new Deno.errors.NotFound("spawn failed")));
  const exec = { ...EXEC, installHint: "Install get-token:\n  brew install get-token\n" };
  const message = await failure(new ExecCredentials({ run }).get("alice", exec));
  assertEquals(
    message,
    'kubeconfig user "alice": credential plugin "get-token" was not found — ' +
      "Install get-token: brew install get-token",
  );
  // A wrapper (env, sudo, setpriv) that could not find it exits with 127.
  const wrapped = fakeRunner(() => ({ code: 127, stderr: "setpriv: failed to execute get-token" }));
  const message127 = await failure(new ExecCredentials({ run: wrapped.run }).get("alice", exec));
  assertMatch(message127, /exit code 127: setpriv: .* — Install get-token: brew install/);
});

Deno.test("exec credential: a plugin that does not finish in time", async () => {
  const { run, calls } = fakeRunner(() => Promise.reject(new Deno.errors.TimedOut("killed")));
  const plugins = new ExecCredentials({ run, timeoutMs: 5_000 });
  const message = await failure(plugins.get("alice", EXEC));
  assertMatch(message, /"get-token" did not finish within 5 s/);
  assertEquals(calls[0].timeoutMs, 5_000);
});

Deno.test("exec credential: no command is an error", async () => {
  const { run, calls } = fakeRunner(tokenAnswer());
  const plugins = new ExecCredentials({ run });
  for (const exec of [{ ...EXEC, command: undefined }, { ...EXEC, command: "" }]) {
    assertMatch(await failure(plugins.get("alice", exec)), /user "alice".*names no command/);
  }
  assertEquals(calls.length, 0);
});

Deno.test("exec credential: interactiveMode Always fails at once, asks for a login", async () => {
  const { run, calls } = fakeRunner(tokenAnswer());
  const exec = { ...EXEC, interactiveMode: "Always" };
  const message = await failure(new ExecCredentials({ run }).get("alice", exec));
  assertMatch(message, /"get-token" needs a terminal .*`kubectl get ns`/);
  assertEquals(calls.length, 0);
  // Never and IfAvailable run it, without a terminal.
  for (const interactiveMode of ["Never", "IfAvailable"]) {
    await new ExecCredentials({ run }).get("alice", { ...EXEC, interactiveMode });
  }
  assertEquals(calls.length, 2);
});

Deno.test("exec credential: unknown apiVersion and interactiveMode are refused", async () => {
  const { run, calls } = fakeRunner(tokenAnswer());
  const plugins = new ExecCredentials({ run });
  const exec = { ...EXEC, apiVersion: "client.authentication.k8s.io/v2" };
  assertMatch(await failure(plugins.get("alice", exec)), /apiVersion ".*\/v2"; k8stun knows/);
  const sometimes = { ...EXEC, interactiveMode: "Sometimes" };
  assertMatch(await failure(plugins.get("alice", sometimes)), /interactiveMode "Sometimes"/);
  assertEquals(calls.length, 0);
});

Deno.test("exec credential: an answer of another apiVersion is refused", async () => {
  const { run } = fakeRunner(() => ({ stdout: credential({ token: SECRET }, V1BETA1) }));
  const plugins = new ExecCredentials({ run });
  assertMatch(
    await failure(plugins.get("alice", EXEC)),
    /answered with apiVersion ".*\/v1beta1", but the kubeconfig asks for ".*\/v1"/,
  );
  // Without an apiVersion in the kubeconfig, the answer's is not checked.
  const exec = { ...EXEC, apiVersion: undefined };
  assertEquals(await plugins.get("bob", exec), { token: SECRET });
});

Deno.test("exec credential: answers that are no credential are refused with a reason", async () => {
  const cases: [string, RegExp][] = [
    ["", /printed nothing on stdout/],
    [`token: ${SECRET}`, /printed something that is not JSON/],
    [`["${SECRET}"]`, /JSON that is not an ExecCredential object/],
    [credential({ token: SECRET }, V1, "Secret"), /printed "Secret", not an ExecCredential/],
    [JSON.stringify({ apiVersion: V1, kind: "ExecCredential" }), /without a status/],
    [credential({}), /neither a token nor a client certificate and key/],
    [credential({ token: "" }), /neither a token/],
    [credential({ clientCertificateData: "CERT" }), /certificate without its key/],
    [credential({ token: SECRET, clientKeyData: "KEY" }), /key without its certificate/],
    [credential({ token: 42 }), /status.token that is not a string/],
    [credential({ token: SECRET }, SECRET), /apiVersion "\[token\]"/],
  ];
  for (const [stdout, reason] of cases) {
    const { run } = fakeRunner(() => ({ stdout }));
    const message = await failure(new ExecCredentials({ run }).get("alice", EXEC));
    assertMatch(message, /^kubeconfig user "alice": credential plugin "get-token" /);
    assertMatch(message, reason);
  }
});

Deno.test("exec credential: a client certificate and key are a credential", async () => {
  const { run } = fakeRunner(() => ({
    stdout: credential({ clientCertificateData: "CERT PEM", clientKeyData: "KEY PEM" }),
  }));
  assertEquals(await new ExecCredentials({ run }).get("alice", EXEC), {
    clientCertificateData: "CERT PEM",
    clientKeyData: "KEY PEM",
  });
});

/** A temporary directory holding executable shell scripts, removed after `body`. */
async function withScripts(
  scripts: Record<string, string>,
  body: (dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "k8stun-exec-credential-" });
  try {
    for (const [name, text] of Object.entries(scripts)) {
      await Deno.writeTextFile(`${dir}/${name}`, `#!/bin/sh\n${text}`);
      await Deno.chmod(`${dir}/${name}`, 0o755);
    }
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("exec credential (real run): a v1 token, built from the environment", async () => {
  const script = `cat <<EOF
{"apiVersion": "${V1}", "kind": "ExecCredential",
 "status": {"token": "token-for-$PLUGIN_PROFILE-$1", "expirationTimestamp": "2999-01-01T00:00:00Z"}}
EOF
printf '%s' "$KUBERNETES_EXEC_INFO" > "$(dirname "$0")/exec-info.json"
`;
  await withScripts({ "get-token": script }, async (dir) => {
    const exec: ExecConfig = {
      command: `${dir}/get-token`,
      args: ["arg1"],
      apiVersion: V1,
      env: [{ name: "PLUGIN_PROFILE", value: "prod" }],
      interactiveMode: "Never",
    };
    const plugins = new ExecCredentials();
    assertEquals(await plugins.get("alice", exec), {
      token: "token-for-prod-arg1",
      expirationTimestamp: "2999-01-01T00:00:00Z",
    });
    assertEquals(JSON.parse(await Deno.readTextFile(`${dir}/exec-info.json`)), {
      apiVersion: V1,
      kind: "ExecCredential",
      spec: { interactive: false },
    });
  });
});

Deno.test("exec credential (real run): a missing command, with its installHint", async () => {
  await withScripts({}, async (dir) => {
    const exec: ExecConfig = {
      command: `${dir}/kubelogin`,
      apiVersion: V1,
      installHint: "kubelogin is not installed; see https://example.invalid/kubelogin",
    };
    assertEquals(
      await failure(new ExecCredentials().get("alice", exec)),
      `kubeconfig user "alice": credential plugin "${dir}/kubelogin" was not found — ` +
        "kubelogin is not installed; see https://example.invalid/kubelogin",
    );
  });
});

Deno.test("exec credential (real run): a failing plugin's exit code and stderr", async () => {
  await withScripts({ "get-token": "echo 'error: you must log in' >&2\nexit 3\n" }, async (dir) => {
    const exec: ExecConfig = { command: `${dir}/get-token`, apiVersion: V1 };
    assertMatch(
      await failure(new ExecCredentials().get("alice", exec)),
      /failed with exit code 3: error: you must log in/,
    );
  });
});

Deno.test("exec credential (real run): a plugin that does not finish is killed", async () => {
  await withScripts({ "get-token": "exec sleep 30\n" }, async (dir) => {
    const exec: ExecConfig = { command: `${dir}/get-token`, apiVersion: V1 };
    const started = Date.now();
    const plugins = new ExecCredentials({ timeoutMs: 300 });
    assertMatch(await failure(plugins.get("alice", exec)), /did not finish within 0.3 s/);
    assert(Date.now() - started < 5_000, "it waited for the plugin");
  });
});

Deno.test("exec credential (real run): a plugin that prints without end is stopped past 1 MiB, not read into memory for the whole timeout", async () => {
  await withScripts({ "get-token": "exec yes\n" }, async (dir) => {
    const exec: ExecConfig = { command: `${dir}/get-token`, apiVersion: V1 };
    const started = Date.now();
    assertMatch(
      await failure(new ExecCredentials({ timeoutMs: 20_000 }).get("alice", exec)),
      /printed more than 1 MiB and was stopped/,
    );
    assert(Date.now() - started < 10_000, "it waited for the timeout");
  });
});

Deno.test("exec credential (real run): a plugin that leaves a process holding its output open is read once it exits, not after the timeout", async () => {
  const script = `sleep 8 &
echo '{"apiVersion": "${V1}", "kind": "ExecCredential", "status": {"token": "t-bg"}}'
`;
  await withScripts({ "get-token": script }, async (dir) => {
    const exec: ExecConfig = { command: `${dir}/get-token`, apiVersion: V1 };
    const started = Date.now();
    const credential = await new ExecCredentials({ timeoutMs: 20_000 }).get("alice", exec);
    assertEquals(credential.token, "t-bg");
    assert(
      Date.now() - started < 5_000,
      `it waited ${Date.now() - started} ms for the background process`,
    );
  });
});
