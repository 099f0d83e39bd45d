import { assert, assertEquals, assertMatch } from "../assert.ts";
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import { connection, SseReader, startTestApi } from "./support.ts";

const hello = { type: "service" as const, name: "hello", namespace: "demo" };
const db0 = { type: "pod" as const, name: "db-0", namespace: "demo" };

Deno.test("api: /vips has exactly the Rust k8stun's fields (docs/compatibility.md §2), sorted by VIP", async () => {
  await using api = await startTestApi();
  const at = new Date("2026-11-23T10:00:00.123Z");
  api.telemetry.emit({ type: "vip_allocated", vip: "198.18.0.10", target: db0, at });
  api.telemetry.emit({ type: "vip_allocated", vip: "198.18.0.2", target: hello, at });
  api.telemetry.emit({ type: "connection_opened", connection: connection(1, "198.18.0.2") });
  api.telemetry.emit({
    type: "bytes",
    connectionId: 1,
    vip: "198.18.0.2",
    sent: 5120,
    received: 88211,
  });
  const response = await fetch(`${api.server.url}/vips`);
  assertEquals(response.headers.get("content-type"), "application/json");
  const body = await response.json();
  assertEquals(body, {
    vips: [
      {
        vip: "198.18.0.2",
        target: hello,
        allocated_at: "2026-11-23T10:00:00.123Z",
        stats: {
          active_connections: 1,
          total_connections: 1,
          bytes_sent: 5120,
          bytes_received: 88211,
        },
        connections: [{
          created_at: "2026-11-23T10:00:00.250Z",
          src_ip: "198.18.0.1",
          src_port: 40001,
          dst_port: 80,
        }],
        ports: [80],
        last_activity: body.vips[0].last_activity,
      },
      {
        vip: "198.18.0.10",
        target: db0,
        allocated_at: "2026-11-23T10:00:00.123Z",
        stats: { active_connections: 0, total_connections: 0, bytes_sent: 0, bytes_received: 0 },
        connections: [],
        ports: [],
        last_activity: null,
      },
    ],
  });
  assertMatch(body.vips[0].last_activity, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
});

Deno.test("api: /events sends retry, a snapshot, then numbered deltas", async () => {
  await using api = await startTestApi();
  const at = new Date();
  api.telemetry.emit({ type: "vip_allocated", vip: "198.18.0.2", target: hello, at });
  const response = await fetch(`${api.server.url}/events`);
  assertEquals(response.headers.get("content-type"), "text/event-stream");
  assertEquals(response.headers.get("cache-control"), "no-cache");
  const sse = new SseReader(response);
  try {
    assertEquals(await sse.next(), { retry: "3000" });
    const snapshot = await sse.next();
    assertEquals(snapshot.id, "1", "the snapshot's id is the last event it reflects");
    const snap = JSON.parse(snapshot.data!);
    assertEquals(snap.type, "snapshot");
    assertEquals(snap.vips.map((v: { vip: string }) => v.vip), ["198.18.0.2"]);

    api.telemetry.emit({ type: "vip_allocated", vip: "198.18.0.3", target: db0, at });
    api.telemetry.emit({
      type: "connection_opened",
      connection: connection(7, "198.18.0.3", 5432),
    });
    api.telemetry.emit({
      type: "connection_closed",
      connection: connection(7, "198.18.0.3", 5432),
    });
    api.telemetry.emit({ type: "vip_removed", vip: "198.18.0.3", target: db0 });

    const allocated = await sse.next();
    assertEquals(allocated.id, "2");
    assertEquals(JSON.parse(allocated.data!), {
      type: "vip_allocated",
      vip: "198.18.0.3",
      target: db0,
    });
    const connected = await sse.next();
    assertEquals(connected.id, "3");
    assertEquals(JSON.parse(connected.data!), {
      type: "connection_changed",
      vip: "198.18.0.3",
      event_type: "connected",
      connection: {
        created_at: "2026-11-23T10:00:00.250Z",
        src_ip: "198.18.0.1",
        src_port: 40007,
        dst_port: 5432,
      },
      active_connections: 1,
      total_connections: 1,
    });
    const disconnected = JSON.parse((await sse.next()).data!);
    assertEquals(disconnected.event_type, "disconnected");
    assertEquals(disconnected.active_connections, 0);
    assertEquals(disconnected.total_connections, 1);
    const removed = await sse.next();
    assertEquals(removed.id, "5");
    assertEquals(JSON.parse(removed.data!), {
      type: "vip_removed",
      vip: "198.18.0.3",
      target: db0,
    });
  } finally {
    await sse.cancel();
  }
});

Deno.test("api: Last-Event-ID in the ring replays what was missed; an unknown id gets a snapshot", async () => {
  await using api = await startTestApi({ ringSize: 4 });
  const at = new Date();
  for (let i = 2; i <= 4; i++) {
    api.telemetry.emit({
      type: "vip_allocated",
      vip: `198.18.0.${i}`,
      target: { ...hello, name: `s${i}` },
      at,
    });
  }
  const resumed = new SseReader(
    await fetch(`${api.server.url}/events`, { headers: { "last-event-id": "1" } }),
  );
  try {
    assertEquals(await resumed.next(), { retry: "3000" });
    const replay = [await resumed.next(), await resumed.next()];
    assertEquals(replay.map((m) => m.id), ["2", "3"]);
    assertEquals(JSON.parse(replay[0].data!).vip, "198.18.0.3");
  } finally {
    await resumed.cancel();
  }
  for (let i = 5; i <= 9; i++) {
    api.telemetry.emit({
      type: "vip_allocated",
      vip: `198.18.0.${i}`,
      target: { ...hello, name: `s${i}` },
      at,
    });
  }
  const stale = new SseReader(
    await fetch(`${api.server.url}/events`, { headers: { "last-event-id": "1" } }),
  );
  try {
    await stale.next();
    const message = await stale.next();
    assertEquals(message.id, "8");
    assertEquals(JSON.parse(message.data!).type, "snapshot", "id 1 fell out of the ring");
  } finally {
    await stale.cancel();
  }
});

Deno.test("api: byte counters reach subscribers as periodic vip_stats events", async () => {
  await using api = await startTestApi();
  api.telemetry.emit({ type: "vip_allocated", vip: "198.18.0.2", target: hello, at: new Date() });
  const sse = new SseReader(await fetch(`${api.server.url}/events`));
  try {
    await sse.next();
    await sse.next();
    api.telemetry.emit({
      type: "bytes",
      connectionId: 1,
      vip: "198.18.0.2",
      sent: 10,
      received: 20,
    });
    api.telemetry.emit({ type: "bytes", connectionId: 1, vip: "198.18.0.2", sent: 5, received: 0 });
    const stats = JSON.parse((await sse.next()).data!);
    assertEquals(stats, {
      type: "vip_stats",
      vip: "198.18.0.2",
      stats: { active_connections: 0, total_connections: 0, bytes_sent: 15, bytes_received: 20 },
    });
  } finally {
    await sse.cancel();
  }
});

Deno.test("api: a non-loopback Host header gets 403 (DNS rebinding)", async () => {
  await using api = await startTestApi();
  for (const host of ["evil.test", "evil.test:80", "127.0.0.1.evil.test"]) {
    assertEquals(await statusWithHost(api.server.port, host), 403, host);
  }
  for (const host of ["localhost", `127.0.0.1:${api.server.port}`, "[::1]:1"]) {
    assertEquals(await statusWithHost(api.server.port, host), 200, host);
  }
});

/** `fetch` may not set Host, so this speaks HTTP/1.1 over a raw socket. */
async function statusWithHost(port: number, host: string): Promise<number> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(
      new TextEncoder().encode(`GET /vips HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`),
    );
    let head = "";
    const buffer = new Uint8Array(4096);
    while (!head.includes("\r\n")) {
      const n = await conn.read(buffer);
      if (n === null) break;
      head += new TextDecoder().decode(buffer.subarray(0, n));
    }
    return Number(head.split(" ")[1]);
  } finally {
    conn.close();
  }
}

Deno.test("api: with a token, requests without it get 401 and WWW-Authenticate; ?token= only on / and /events", async () => {
  await using api = await startTestApi({ token: "s3cret" });
  const denied = await fetch(`${api.server.url}/vips`);
  assertEquals(denied.status, 401);
  assertEquals(denied.headers.get("www-authenticate"), 'Bearer realm="k8stun"');
  await denied.body?.cancel();
  const wrong = await fetch(`${api.server.url}/vips`, {
    headers: { authorization: "Bearer nope" },
  });
  assertEquals(wrong.status, 401);
  await wrong.body?.cancel();
  const ok = await fetch(`${api.server.url}/vips`, { headers: { authorization: "Bearer s3cret" } });
  assertEquals(ok.status, 200);
  await ok.body?.cancel();
  const viaQuery = await fetch(`${api.server.url}/vips?token=s3cret`);
  assertEquals(viaQuery.status, 401, "/vips does not take the token from the query");
  await viaQuery.body?.cancel();
  const page = await fetch(`${api.server.url}/?token=s3cret`);
  assertEquals(page.status, 200);
  assert((await page.text()).includes("EventSource"));
  const events = await fetch(`${api.server.url}/events?token=s3cret`);
  assertEquals(events.status, 200);
  await events.body?.cancel();
});

Deno.test("api: /metrics parses as Prometheus text and counters move with traffic", async () => {
  await using api = await startTestApi();
  const scrape = async () => {
    const response = await fetch(`${api.server.url}/metrics`);
    assertEquals(response.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
    const families = parsePrometheusTextFormat(await response.text()) as {
      name: string;
      metrics: { value?: string; labels?: Record<string, string>; count?: string }[];
    }[];
    return (name: string, labels: Record<string, string> = {}) => {
      const family = families.find((f) => f.name === name);
      const metric = family?.metrics.find((m) =>
        Object.entries(labels).every(([k, v]) => m.labels?.[k] === v)
      );
      return Number(metric?.value ?? metric?.count ?? NaN);
    };
  };
  const before = await scrape();
  assertEquals(before("k8stun_connections_active"), 0);
  api.telemetry.emit({ type: "vip_allocated", vip: "198.18.0.2", target: hello, at: new Date() });
  api.telemetry.emit({ type: "connection_opened", connection: connection(1, "198.18.0.2") });
  api.telemetry.emit({ type: "bytes", connectionId: 1, vip: "198.18.0.2", sent: 100, received: 7 });
  api.telemetry.emit({ type: "dial_error", reason: "refused", target: "x", message: "refused" });
  api.telemetry.emit({ type: "dns_query", kind: "cluster", rcode: "NOERROR" });
  api.telemetry.emit({ type: "portforward_dial", seconds: 0.004, reused: true });
  api.telemetry.emit({ type: "watch_restart", resource: "services" });
  api.telemetry.emit({ type: "object_refused", resource: "pods" });
  const after = await scrape();
  assertEquals(after("k8stun_vips", { type: "service" }), 1);
  assertEquals(after("k8stun_connections_active"), 1);
  assertEquals(after("k8stun_bytes_total", { direction: "sent" }), 100);
  assertEquals(after("k8stun_bytes_total", { direction: "received" }), 7);
  assertEquals(after("k8stun_dial_errors_total", { reason: "refused" }), 1);
  assertEquals(after("k8stun_dns_queries_total", { kind: "cluster", rcode: "NOERROR" }), 1);
  assertEquals(after("k8stun_portforward_dial_seconds"), 1);
  assertEquals(after("k8stun_watch_restarts_total", { resource: "services" }), 1);
  assertEquals(after("k8stun_cluster_objects_refused_total", { resource: "pods" }), 1);
  assertEquals(after("k8stun_target_connections_active", { vip: "198.18.0.2" }), 1);
});

Deno.test("api: /healthz, 404 for unknown paths, 405 for other methods", async () => {
  await using api = await startTestApi();
  const health = await fetch(`${api.server.url}/healthz`);
  assertEquals(await health.json(), {
    status: "ok",
    tun: "up",
    dns_mode: "disabled",
    cluster: "synced",
  });
  const missing = await fetch(`${api.server.url}/nope`);
  assertEquals(missing.status, 404);
  await missing.body?.cancel();
  const post = await fetch(`${api.server.url}/vips`, { method: "POST" });
  assertEquals(post.status, 405);
  await post.body?.cancel();
});
