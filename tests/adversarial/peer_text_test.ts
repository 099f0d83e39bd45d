/**
 * Text that other parties write into our messages and logs (core/peer_text.ts, core/log.ts): an
 * API server's refusal, a refused port-forward upgrade, a value logged as it came. Whatever they
 * hold — newlines that would forge a log line, terminal escape sequences, megabytes — what reaches
 * the user is one line, without control characters, of bounded length.
 */
import { assert, assertEquals, assertMatch } from "../assert.ts";
import { oneLine } from "../../core/peer_text.ts";
import { visibleControls } from "../../core/log.ts";
import { ApiAccess } from "../../core/k8s/api_access.ts";
import { ApiClient } from "../../core/k8s/api_client.ts";
import { createPortForwardDialer } from "../../plugins/portforward/mod.ts";
import { kubeletFailure } from "../../plugins/portforward/kubelet_error.ts";
import { tokenKubeconfig } from "../kubeconfig/token_kubeconfig.ts";

/** A hostile message: a forged log line, a screen clear, a window-title change, a C1 control. */
const HOSTILE = "denied\n2026-12-06 [ERR] forged line\x1b[2J\x1b]0;title\x07 and\u009b more\r";

/** No control character of any kind (C0, DEL, C1). */
// deno-lint-ignore no-control-regex
const CONTROL = /[\x00-\x1f\x7f-\x9f]/;

function kubeconfigFor(port: number): string {
  return tokenKubeconfig(`http://127.0.0.1:${port}`);
}

Deno.test("peer text: one line, escape sequences and controls gone, capped", () => {
  const line = oneLine(HOSTILE);
  assertEquals(line, "denied 2026-12-06 [ERR] forged line and more");
  assert(!CONTROL.test(line));
  assertEquals(oneLine("x".repeat(600)), "x".repeat(500) + "…");
  assertEquals(oneLine("  a \t\t b  ", 10), "a b");
});

Deno.test("log: a text line shows control characters as escapes instead of acting on them", () => {
  assertEquals(visibleControls("a\nb\x1b[31mc\td\r"), "a\\nb\\x1b[31mc\td\\r");
  assertEquals(visibleControls("caf\u00e9 \u009b"), "caf\u00e9 \\x9b");
});

Deno.test("log: a logged value cannot forge a second line or reach the terminal as an escape", async () => {
  const script = `
    import { logger, setupLogging } from ${
    JSON.stringify(new URL("../../core/log.ts", import.meta.url).href)
  };
    await setupLogging("info", "text");
    logger("dns").warn("asked for {name}", { name: ${JSON.stringify(HOSTILE)} });
  `;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--ext=ts", script],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stderr);
  assertEquals(out.code, 0, text);
  const lines = text.trimEnd().split("\n");
  assertEquals(lines.length, 1, text);
  assert(!CONTROL.test(lines[0]), lines[0]);
  assertMatch(lines[0], /asked for denied\\n2026-12-06 \[ERR\] forged line\\x1b\[2J/);
});

Deno.test("api client: a refusal's Status message reaches the error on one line, without escapes", async () => {
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => Response.json({ kind: "Status", message: HOSTILE + "y".repeat(10_000) }, { status: 403 }),
  );
  const client = new ApiClient(ApiAccess.fromText(kubeconfigFor(server.addr.port)), {
    handshakeTimeoutMs: 5_000,
  });
  const error = await client.get("/api/v1/pods").catch((e) => e);
  assert(error instanceof Error);
  assert(!CONTROL.test(error.message), error.message);
  assert(error.message.length < 600, `${error.message.length} characters`);
  assertMatch(error.message, /^HTTP 403: denied 2026-12-06/);
});

Deno.test("portforward v4: a refused upgrade's body becomes a one-line message, read only in part", async () => {
  let sent = 0;
  await using server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () => {
    const chunk = new TextEncoder().encode(HOSTILE.repeat(1000));
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent > 64 * 1024 * 1024) return controller.close();
        sent += chunk.length;
        controller.enqueue(chunk);
      },
    });
    return new Response(body, { status: 403 });
  });
  const dialer = createPortForwardDialer({
    access: ApiAccess.fromText(kubeconfigFor(server.addr.port)),
    transports: ["v4"],
  });
  const error = await dialer.dial({ kind: "pod", namespace: "demo", name: "p", port: 80 }, {
    signal: new AbortController().signal,
    flow: { port: 80, protocol: "tcp", front: "socks" },
  }).catch((e) => e);
  assert(error instanceof Error);
  assertMatch(error.message, /^port-forward upgrade failed with 403: denied 2026-12-06/);
  assert(!CONTROL.test(error.message), error.message);
  assert(error.message.length < 700, `${error.message.length} characters`);
});

Deno.test("portforward: the kubelet's error-stream text is a one-line failure, a refusal when it says so", () => {
  const refused = kubeletFailure(new TextEncoder().encode(
    "error forwarding port 8080 to pod abc, uid :\nexit status 1: connect: Connection refused\n",
  ));
  assertEquals(refused.reason, "refused");
  assertEquals(
    refused.message,
    "error forwarding port 8080 to pod abc, uid : exit status 1: connect: Connection refused",
  );
  const hostile = kubeletFailure(new TextEncoder().encode(HOSTILE.repeat(50_000)));
  assertEquals(hostile.reason, "error");
  assert(!CONTROL.test(hostile.message) && hostile.message.length <= 501);
});
