/** Configuration mistakes end k8stun at once with one line saying what to fix (issue #4). */
import { assert, assertEquals, assertMatch } from "../assert.ts";
import { DEMO_FIXTURE, startSimCluster } from "../../sim/mod.ts";

const MAIN = new URL("../../cli/main.ts", import.meta.url).pathname;

async function k8stun(...args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    stdout: "piped",
    stderr: "piped",
    env: { KUBECONFIG: "" },
  }).output();
  const stderr = new TextDecoder().decode(out.stderr).split("\n").filter((l) => l.trim());
  return { code: out.code, stderr };
}

Deno.test("cli: a missing kubeconfig is one error line naming the file, exit non-zero", async () => {
  const out = await k8stun("proxy", "--kubeconfig", "/nonexistent/kubeconfig");
  assert(out.code !== 0);
  assertEquals(out.stderr.length, 1, out.stderr.join("\n"));
  assertMatch(out.stderr[0], /no kubeconfig found at \/nonexistent\/kubeconfig/);
});

Deno.test({
  name: "cli: wrong credentials are one error line naming the server and context, exit non-zero",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using sim = await startSimCluster({ fixture: DEMO_FIXTURE, token: "right" });
    const dir = await Deno.makeTempDir();
    try {
      const path = `${dir}/kubeconfig`;
      await Deno.writeTextFile(path, sim.kubeconfig().replace("token: right", "token: wrong"));
      const out = await k8stun(
        "proxy",
        "--kubeconfig",
        path,
        "--listen-socks",
        "127.0.0.1:0",
        "--listen-http",
        "127.0.0.1:0",
      );
      assert(out.code !== 0);
      assertEquals(out.stderr.length, 1, out.stderr.join("\n"));
      assertMatch(
        out.stderr[0],
        new RegExp(`${sim.url}.*rejected the credentials of context "k8stun-sim" \\(401`),
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
