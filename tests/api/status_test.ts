import { assert, assertEquals, assertMatch } from "../assert.ts";
import { formatStatus } from "../../cli/commands/status.ts";
import { connection, startTestApi } from "./support.ts";

Deno.test("status: k8stun status prints the running instance's VIPs and connections", async () => {
  await using api = await startTestApi({ token: "t0k" });
  api.telemetry.emit({
    type: "vip_allocated",
    vip: "198.18.0.2",
    target: { type: "service", name: "hello", namespace: "demo" },
    at: new Date(),
  });
  api.telemetry.emit({ type: "connection_opened", connection: connection(3, "198.18.0.2") });
  const main = new URL("../../cli/main.ts", import.meta.url).pathname;
  const run = (...args: string[]) =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", main, "status", "--url", api.server.url, ...args],
      stdout: "piped",
      stderr: "piped",
      env: { K8STUN_HTTP_TOKEN: "t0k" },
    }).output();
  const table = await run();
  const text = new TextDecoder().decode(table.stdout);
  assert(table.success, new TextDecoder().decode(table.stderr));
  assert(/198\.18\.0\.2\s+service demo\/hello\s+80\s+1\s+1/.test(text), text);
  assert(text.includes("198.18.0.1:40003 → 198.18.0.2:80"), text);
  const json = await run("--json");
  const body = JSON.parse(new TextDecoder().decode(json.stdout));
  assertEquals(body.vips[0].vip, "198.18.0.2");
});

Deno.test("status: without a reachable instance it fails with one clear line", async () => {
  const main = new URL("../../cli/main.ts", import.meta.url).pathname;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", main, "status", "--url", "http://127.0.0.1:1"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert(!out.success);
  const err = new TextDecoder().decode(out.stderr).trim();
  assert(err.startsWith("k8stun: cannot reach the k8stun API at http://127.0.0.1:1"), err);
  assertEquals(err.split("\n").length, 1);
});

Deno.test("status: the table for no VIPs says so", () => {
  assertEquals(formatStatus([]), "no VIPs allocated");
});

Deno.test("status: lists every running instance under a line naming it; --pid picks one", async () => {
  await using first = await startTestApi({ token: "one" });
  await using second = await startTestApi({ token: "two" });
  first.telemetry.emit({
    type: "vip_allocated",
    vip: "198.18.0.2",
    target: { type: "service", name: "hello", namespace: "demo" },
    at: new Date(),
  });
  second.telemetry.emit({
    type: "vip_allocated",
    vip: "100.127.0.2",
    target: { type: "service", name: "db", namespace: "prod" },
    at: new Date(),
  });
  // Two live processes (this test and a sleeping child) and one that is gone.
  const sleeper = new Deno.Command("sleep", { args: ["30"] }).spawn();
  const dir = await Deno.makeTempDir({ prefix: "k8stun-status-" });
  try {
    const record = (pid: number, url: string, token: string, extra: Record<string, string>) =>
      Deno.writeTextFile(
        `${dir}/api-${pid}.json`,
        JSON.stringify({ url, token, pid, startedAt: extra.startedAt, ...extra }),
        { mode: 0o600 },
      );
    await record(Deno.pid, first.server.url, "one", {
      startedAt: "2025-01-01T00:00:00.000Z",
      tun: "k8stun0",
      vipRange: "198.18.0.0/15",
      context: "staging",
    });
    await record(sleeper.pid, second.server.url, "two", { startedAt: "2025-01-01T00:00:01.000Z" });
    await record(2147483647, "http://127.0.0.1:1", "gone", {
      startedAt: "2024-01-01T00:00:00.000Z",
    });
    const main = new URL("../../cli/main.ts", import.meta.url).pathname;
    const run = (...args: string[]) =>
      new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", main, "status", ...args],
        stdout: "piped",
        stderr: "piped",
        env: { K8STUN_RUNTIME_DIR: dir },
      }).output();
    const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

    const all = await run();
    assert(all.success, text(all.stderr));
    const sections = text(all.stdout).trimEnd().split("\n\n");
    assertEquals(sections.length, 2, text(all.stdout));
    assertEquals(
      sections[0].split("\n")[0],
      `k8stun pid ${Deno.pid}: context staging, k8stun0, VIPs 198.18.0.0/15, API ${first.server.url}, since 2025-01-01T00:00:00.000Z`,
    );
    assertMatch(sections[0], /198\.18\.0\.2\s+service demo\/hello/);
    assertEquals(
      sections[1].split("\n")[0],
      `k8stun pid ${sleeper.pid}: API ${second.server.url}, since 2025-01-01T00:00:01.000Z`,
    );
    assertMatch(sections[1], /100\.127\.0\.2\s+service prod\/db/);

    const picked = await run("--pid", String(sleeper.pid));
    assert(picked.success, text(picked.stderr));
    assertMatch(
      text(picked.stdout),
      /^VIP\s+TARGET[^\n]*\n100\.127\.0\.2\s+service prod\/db[^\n]*\n$/,
    );
    const json = await run("--json", "--pid", String(Deno.pid));
    assertEquals(JSON.parse(text(json.stdout)).vips[0].vip, "198.18.0.2");

    const gone = await run("--pid", "2147483647");
    assert(!gone.success);
    assertEquals(
      text(gone.stderr).trim().split("\n").at(-1),
      `k8stun: no running k8stun with pid 2147483647 and an HTTP API (running: pid ${Deno.pid}, ${sleeper.pid})`,
    );
  } finally {
    sleeper.kill();
    await sleeper.status;
    await Deno.remove(dir, { recursive: true });
  }
});
