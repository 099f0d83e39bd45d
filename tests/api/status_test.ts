import { assert, assertEquals } from "../assert.ts";
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
