/**
 * How the port-forward dialer dials the API server over TLS: the kubeconfig's CA and
 * `tls-server-name` on Deno's TLS, `insecure-skip-tls-verify` on node:tls with a warning, and
 * credentials (an exec plugin's token) run again for every new session.
 */
import { ApiAccess } from "../../core/k8s/api_access.ts";
import { assert, assertEquals, assertMatch } from "../assert.ts";
import { DEMO_FIXTURE, type SimCluster, startSimCluster } from "../../sim/mod.ts";
import { createPortForwardDialer } from "../../plugins/portforward/mod.ts";
import type { Dialer } from "../../mod.ts";
import { relayToApi } from "../lab/outage_relay.ts";

const ECHO = { kind: "pod" as const, namespace: "demo", name: "echo-5c6b-m9t2z", port: 7007 };
const dialOptions = () => ({
  signal: new AbortController().signal,
  flow: { port: 1, protocol: "tcp" as const, front: "tun" as const },
});

async function echoes(dialer: Dialer, text: string): Promise<boolean> {
  const duplex = await dialer.dial(ECHO, dialOptions());
  const writer = duplex.writable.getWriter();
  await writer.write(new TextEncoder().encode(text));
  await writer.close();
  return await new Response(duplex.readable).text() === text;
}

/** A kubeconfig for `sim` at `server`, with `cluster` and `user` lines (YAML, indented 4). */
function kubeconfig(server: string, cluster: string[], user: string[]): ApiAccess {
  const kc = ApiAccess.fromText([
    "apiVersion: v1",
    "kind: Config",
    "clusters:",
    "- name: c",
    "  cluster:",
    `    server: ${server}`,
    ...cluster.map((l) => `    ${l}`),
    "users:",
    "- name: u",
    "  user:",
    ...user.map((l) => `    ${l}`),
    "contexts:",
    "- name: x",
    "  context: { cluster: c, user: u }",
    "current-context: x",
  ].join("\n"));
  return kc;
}

const ca = (sim: SimCluster) => `certificate-authority-data: ${btoa(sim.caPem!)}`;

Deno.test({
  name:
    "tls: tls-server-name is the name the API server's certificate is checked against; one it does not carry fails the dial naming the TLS error",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using sim = await startSimCluster({ fixture: DEMO_FIXTURE });
    const good = createPortForwardDialer({
      access: kubeconfig(sim.url, [ca(sim), "tls-server-name: localhost"], [
        `token: ${sim.token}`,
      ]),
    });
    const bad = createPortForwardDialer({
      access: kubeconfig(sim.url, [ca(sim), "tls-server-name: wrong.example"], [
        `token: ${sim.token}`,
      ]),
    });
    try {
      assert(await echoes(good, "named"), "the echo through tls-server-name differs");
      const error = await bad.dial(ECHO, dialOptions()).then(() => undefined, (e) => e);
      assert(error, "a certificate without the server name was accepted");
      assertMatch(
        String(error.message),
        /port-forward connection: .*(certificate|NotValidForName)/i,
      );
    } finally {
      await good.close?.();
      await bad.close?.();
    }
  },
});

Deno.test({
  name:
    "tls: insecure-skip-tls-verify still dials (node:tls) and warns once that backpressure is held in memory",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using sim = await startSimCluster({ fixture: DEMO_FIXTURE });
    const warnings: string[] = [];
    const dialer = createPortForwardDialer({
      access: kubeconfig(sim.url, ["insecure-skip-tls-verify: true"], [`token: ${sim.token}`]),
      warn: (m) => warnings.push(m),
    });
    try {
      assert(await echoes(dialer, "unverified"), "the echo differs");
      assert(await echoes(dialer, "again"), "the echo differs");
      assertEquals(warnings.length, 1, warnings.join("\n"));
      assertMatch(warnings[0], /insecure-skip-tls-verify.*node:tls.*certificate-authority/);
    } finally {
      await dialer.close?.();
    }
  },
});

Deno.test({
  name:
    "tls: an exec plugin's expiring token is fetched again for the session that replaces a lost one",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using sim = await startSimCluster({ fixture: DEMO_FIXTURE });
    await using relay = relayToApi(sim.url);
    const dir = await Deno.makeTempDir({ prefix: "k8stun-exec-" });
    try {
      const script = `${dir}/token.sh`;
      await Deno.writeTextFile(
        script,
        // Expiring within the reuse margin: every new session needs a fresh token.
        `#!/bin/sh\necho run >> "${dir}/runs"\n` +
          `expiry=$(date -u -d '+5 seconds' +%Y-%m-%dT%H:%M:%SZ)\n` +
          `echo '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential",` +
          `"status":{"token":"${sim.token}","expirationTimestamp":"'$expiry'"}}'\n`,
      );
      await Deno.chmod(script, 0o755);
      const runs = async () =>
        (await Deno.readTextFile(`${dir}/runs`).catch(() => "")).split("\n").filter(Boolean)
          .length;
      const dialer = createPortForwardDialer({
        access: kubeconfig(`https://127.0.0.1:${relay.port}`, [ca(sim)], [
          "exec:",
          "  apiVersion: client.authentication.k8s.io/v1",
          `  command: ${script}`,
          "  interactiveMode: Never",
        ]),
      });
      try {
        assert(await echoes(dialer, "first"), "the echo differs");
        assert(await echoes(dialer, "same session"), "the echo differs");
        const before = await runs();
        assert(before >= 1, "the exec plugin never ran");
        relay.setMode("refuse"); // the session's connection is reset
        await new Promise((r) => setTimeout(r, 200));
        relay.setMode("forward");
        assert(await echoes(dialer, "new session"), "the echo differs");
        assert(await runs() > before, "the new session reused the old credentials");
      } finally {
        await dialer.close?.();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
