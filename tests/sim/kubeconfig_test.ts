/**
 * What `k8stun sim --kubeconfig-out` writes works with k8stun's own commands, also with --no-tls
 * (client-node refuses an http:// server unless the kubeconfig opts out of TLS verification).
 */
import { assert, assertMatch } from "../assert.ts";
import { DEMO_FIXTURE, startSimCluster } from "../../sim/mod.ts";

const root = new URL("../../", import.meta.url).pathname;

/** Reads a child's stdout until `pattern` shows up; returns what was read. */
async function readUntil(
  reader: ReadableStreamDefaultReader<string>,
  pattern: RegExp,
  what: string,
): Promise<string> {
  let output = "";
  while (!pattern.test(output)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`${what} exited before printing ${pattern}: ${output}`);
    output += value;
  }
  return output;
}

function freePort(): number {
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  return port;
}

Deno.test({
  name:
    "sim: the kubeconfig `k8stun sim --no-tls` writes works with `k8stun proxy` (no TLS error, no certificate warning)",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "k8stun-sim-kubeconfig-" });
    const kubeconfig = `${dir}/kubeconfig`;
    const spawn = (args: string[]) =>
      new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", `${root}cli/main.ts`, ...args],
        cwd: root,
        stdout: "piped",
        stderr: "piped",
      }).spawn();
    // What `k8stun sim --no-tls --kubeconfig-out F --namespace demo` writes.
    await using sim = await startSimCluster({ fixture: DEMO_FIXTURE, tls: false });
    await sim.writeKubeconfig(kubeconfig, "demo");
    const port = freePort();
    let proxy: Deno.ChildProcess | undefined;
    try {
      assertMatch(await Deno.readTextFile(kubeconfig), /server: http:\/\//);
      proxy = spawn([
        "proxy",
        "--kubeconfig",
        kubeconfig,
        "--listen-socks",
        `127.0.0.1:${port}`,
        "--plugin-dir",
        `${dir}/no-plugins`,
      ]);
      const proxyOut = proxy.stdout.pipeThrough(new TextDecoderStream()).getReader();
      const stderr = proxy.stderr.pipeThrough(new TextDecoderStream()).getReader();
      let errors = "";
      const collecting = (async () => {
        while (true) {
          const { value, done } = await stderr.read();
          if (done) return;
          errors += value;
        }
      })();
      await readUntil(proxyOut, /is ready/, "k8stun proxy").catch(async (error) => {
        await collecting;
        throw new Error(`${error.message}\nstderr: ${errors}`);
      });
      const curl = await new Deno.Command("curl", {
        args: ["-s", "-m", "10", "--socks5-hostname", `127.0.0.1:${port}`, "http://hello/"],
        stdout: "piped",
      }).output();
      assertMatch(new TextDecoder().decode(curl.stdout), /^hello from hello-/);
      assert(!/insecure-skip-tls-verify/.test(errors), `unexpected warning: ${errors}`);
    } finally {
      if (proxy) {
        proxy.kill("SIGKILL");
        await proxy.status;
        await proxy.stdout.cancel().catch(() => {});
        await proxy.stderr.cancel().catch(() => {});
      }
      await Deno.remove(dir, { recursive: true });
    }
  },
});
