/** `k8stun proxy` runs as an unprivileged user (needs root only to switch to `nobody`). */
import { assertEquals, assertMatch } from "../assert.ts";
import { DEMO_FIXTURE, startSimCluster } from "../../core/sim/mod.ts";

const root = new URL("../../", import.meta.url).pathname;

Deno.test({
  name: "proxy: k8stun proxy works as the unprivileged user nobody",
  ignore: Deno.uid() !== 0,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "k8stun-nonroot-" });
    await using sim = await startSimCluster({ fixture: DEMO_FIXTURE });
    const denoDir = `${dir}/deno`;
    // nobody cannot read root's Deno cache: prepare one it can read.
    const cached = await new Deno.Command(Deno.execPath(), {
      args: ["cache", "--quiet", `${root}cli/main.ts`],
      cwd: root,
      env: { DENO_DIR: denoDir },
    }).output();
    assertEquals(cached.success, true);
    await sim.writeKubeconfig(`${dir}/kubeconfig`, "demo");
    await new Deno.Command("chmod", { args: ["-R", "a+rX", dir] }).output();
    const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (probe.addr as Deno.NetAddr).port;
    probe.close();
    const child = new Deno.Command("setpriv", {
      args: [
        "--reuid=nobody",
        "--regid=nogroup",
        "--clear-groups",
        Deno.execPath(),
        "run",
        "-A",
        "--cached-only",
        `${root}cli/main.ts`,
        "proxy",
        "--kubeconfig",
        `${dir}/kubeconfig`,
        "--listen-socks",
        `127.0.0.1:${port}`,
        "--plugin-dir",
        `${dir}/no-plugins`,
      ],
      cwd: root,
      env: { DENO_DIR: denoDir, HOME: dir },
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    try {
      const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
      let output = "";
      while (!output.includes("is ready")) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`proxy exited: ${output}`);
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
      await child.stderr.cancel().catch(() => {});
      await Deno.remove(dir, { recursive: true });
    }
  },
});
