/**
 * `k8stun proxy` runs as an unprivileged user (needs root only to switch to `nobody`), through
 * `bin/k8stun` of a checkout that root set up: the launcher's module cache in `.tools/` serves
 * every user, where Deno's own cache is per user.
 */
import { assertEquals, assertMatch } from "../assert.ts";
import { DEMO_FIXTURE, startSimCluster } from "../../sim/mod.ts";
import { copyCheckout } from "../cli/checkout_copy.ts";

Deno.test({
  name: "proxy: k8stun proxy works as the unprivileged user nobody, through bin/k8stun",
  ignore: Deno.uid() !== 0,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    // The checkout may sit below a directory nobody cannot enter (a 0700 home, `mktemp -d`):
    // nobody runs a copy in a world-readable scratch directory instead.
    await using checkout = await copyCheckout();
    const dir = checkout.scratch;
    await using sim = await startSimCluster({ fixture: DEMO_FIXTURE });
    // Root runs the launcher first, as whoever set the checkout up would.
    const prepared = await new Deno.Command(`${checkout.root}/bin/k8stun`, {
      args: ["--version"],
      stdout: "null",
      stderr: "piped",
    }).output();
    assertEquals(prepared.code, 0, new TextDecoder().decode(prepared.stderr));
    await sim.writeKubeconfig(`${dir}/kubeconfig`, "demo");
    await Deno.chmod(`${dir}/kubeconfig`, 0o644);
    const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (probe.addr as Deno.NetAddr).port;
    probe.close();
    const child = new Deno.Command("setpriv", {
      args: [
        "--reuid=nobody",
        "--regid=nogroup",
        "--clear-groups",
        `${checkout.root}/bin/k8stun`,
        "proxy",
        "--kubeconfig",
        `${dir}/kubeconfig`,
        "--listen-socks",
        `127.0.0.1:${port}`,
        "--plugin-dir",
        `${dir}/no-plugins`,
      ],
      cwd: dir,
      // No DENO_DIR: nobody's own cache (in a HOME it cannot write) stays empty.
      env: { HOME: "/nonexistent", PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin" },
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const stderr = new Response(child.stderr).text();
    try {
      const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
      let output = "";
      while (!output.includes("is ready")) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`proxy exited: ${output}${await stderr}`);
        output += value;
      }
      const status = await Deno.readTextFile(`/proc/${child.pid}/status`);
      assertMatch(status, /\nUid:\s+65534\s/);
      const curl = await new Deno.Command("curl", {
        args: ["-s", "-m", "10", "--socks5-hostname", `127.0.0.1:${port}`, "http://hello/"],
        stdout: "piped",
      }).output();
      assertMatch(new TextDecoder().decode(curl.stdout), /^hello from hello-/);
      reader.releaseLock();
    } finally {
      child.kill("SIGKILL");
      await child.status;
      await stderr;
    }
  },
});
