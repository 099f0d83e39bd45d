/**
 * The README walked through top to bottom, as a new user would, in a lab: the "Try it" demo and
 * every command it suggests, the rehearsal of a real cluster against `k8stun sim`, proxy mode,
 * and the example plugin copied out of the README, checked and then used. The commands are read
 * from README.md itself, so the README cannot drift from what works.
 */
import { assert, assertEquals, assertMatch } from "../assert.ts";
import { Lab, type LabProcess, labUnavailable } from "../lab/lab.ts";
import { DEMO_RESOLV } from "../adversarial/harness.ts";
import { warmLauncher } from "../cli/launcher.ts";

const ROOT = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");
const README = Deno.readTextFileSync(`${ROOT}/README.md`);

/** The fenced blocks of `lang` in the README section whose heading starts with `heading`. */
function blocks(heading: string, lang: string): string[] {
  const section = README.split(/^## /m).find((s) => s.startsWith(heading));
  assert(section, `README has no section "${heading}"`);
  return [...section.matchAll(new RegExp("```" + lang + "\\n([\\s\\S]*?)```", "g"))].map((m) =>
    m[1]
  );
}

/** A README command line as it runs here: comments dropped, sudo (we are root) and paths. */
function command(line: string, lab: Lab): string {
  return line.replace(/\s+#\s.*$/, "").replace(/^sudo\s+/, "").trim()
    .replaceAll("bin/k8stun", `${ROOT}/bin/k8stun`)
    .replaceAll("tools/deno", `${ROOT}/tools/deno`)
    .replaceAll("~/sim.kubeconfig", `${lab.dir}/sim.kubeconfig`);
}

/** Starts a long-running README command in the lab and waits until it says it is up. */
async function start(lab: Lab, line: string, ready: RegExp, env: Record<string, string> = {}) {
  const process = lab.spawn("sh", ["-c", `cd ${ROOT} && exec ${command(line, lab)}`], { env });
  await process.waitForOutput(ready, 90_000);
  return process;
}

/** Runs README command lines to completion; each must succeed and print something. */
async function runAll(lab: Lab, lines: string[], env: Record<string, string> = {}) {
  const outputs: string[] = [];
  for (const line of lines.map((l) => command(l, lab)).filter(Boolean)) {
    const prefix = Object.entries(env).map(([k, v]) => `${k}=${v} `).join("");
    const out = await lab.sh(`cd ${ROOT} && { ${prefix}${line}; } </dev/null`, 20_000);
    assertEquals(out.code, 0, `${line}\n${out.stdout}${out.stderr}`);
    assert(out.stdout.trim().length > 0, `${line} printed nothing`);
    outputs.push(out.stdout);
  }
  return outputs;
}

async function stop(process: LabProcess) {
  process.signal("SIGINT");
  await process.status;
}

Deno.test({
  name:
    "readme: Try it, a rehearsal against k8stun sim, proxy mode and the example plugin work as written",
  ignore: labUnavailable() !== undefined,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await warmLauncher();
    await using lab = await Lab.create({ resolvConf: DEMO_RESOLV });

    // Try it: the demo, then every command the README suggests trying.
    const [setup, tryThese] = blocks("Try it", "sh");
    const demoLine = setup.split("\n").find((l) => l.includes("task demo"))!;
    const demo = await start(lab, demoLine, /k8stun is ready on/);
    const tried = await runAll(lab, tryThese.split("\n"));
    assertMatch(tried[0], /^hello from hello-/);
    assertMatch(tried.join(""), /db-0\nhi/);
    await stop(demo);

    // A real cluster, rehearsed against `k8stun sim`.
    const rehearsal = blocks("Usage with a real cluster", "sh")[1].split("\n").filter(Boolean);
    const sim = await start(lab, rehearsal[0], /kubeconfig: /);
    const run = await start(lab, rehearsal[1], /k8stun is ready on/);
    const used = await runAll(lab, rehearsal.slice(2));
    assertMatch(used[0], /^hello from hello-/);
    assertEquals(JSON.parse(used[1]).status, "ok");
    await stop(run);

    // Proxy mode, against the same cluster (the kubeconfig as KUBECONFIG).
    const env = { KUBECONFIG: `${lab.dir}/sim.kubeconfig` };
    const [proxyLines] = blocks("Proxy mode", "sh").map((b) => b.split("\n").filter(Boolean));
    const proxy = await start(lab, proxyLines[0], /k8stun proxy is ready/, env);
    const proxied = await runAll(lab, proxyLines.slice(1));
    for (const out of proxied) assertMatch(out, /^hello from hello-/);
    await stop(proxy);

    // The README's plugin, copied out of it as a user would, checked, then used.
    const [plugin] = blocks("Plugins", "ts");
    const path = /^\/\/ (\S+)/.exec(plugin)![1].replace("~/.config", `${lab.dir}/config`);
    await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
    await Deno.writeTextFile(path, plugin);
    const check = await lab.run(`${ROOT}/bin/k8stun`, ["plugins", "check", path]);
    assertEquals(check.code, 0, check.stdout + check.stderr);
    const withPlugin = await start(
      lab,
      `${proxyLines[0].replace(/\s+#.*$/, "")} --plugin-config internal-names.namespace=demo`,
      /k8stun proxy is ready/,
      env,
    );
    const internal = await runAll(lab, [
      "curl --proxy socks5h://127.0.0.1:1080 http://hello.internal/",
    ]);
    assertMatch(internal[0], /^hello from hello-/);
    await stop(withPlugin);
    await stop(sim);
  },
});
