/** The VIP pool: --vip-base forms, VIPs kept across restarts, reclaiming (pinned VIPs stay, the sweep at the timeout's scale). */
import { assert, assertEquals, assertThrows } from "../assert.ts";
import { parseVipBase, VipPool } from "../../core/vip.ts";

const hello = { type: "service" as const, namespace: "demo", name: "hello" };
const other = { type: "service" as const, namespace: "demo", name: "other" };

Deno.test("vip: a pinned (pre-allocated) VIP is never reclaimed while pinned; unpinned, it is", () => {
  let now = 0;
  const pool = new VipPool({ network: parseVipBase(undefined), staleMs: 5000, now: () => now });
  const pinned = pool.allocate(hello, { pinned: true });
  const loose = pool.allocate(other);
  now += 3_600_000;
  assertEquals(pool.sweep(), [loose], "only the unpinned VIP is stale");
  assertEquals(pool.lookup(pinned), hello);
  pool.unpin(hello);
  now += 5001;
  assertEquals(pool.sweep(), [pinned]);
});

Deno.test("vip: allocating again with pinned pins an existing VIP", () => {
  let now = 0;
  const pool = new VipPool({ network: parseVipBase(undefined), staleMs: 1000, now: () => now });
  const vip = pool.allocate(hello);
  assertEquals(pool.allocate(hello, { pinned: true }), vip);
  now += 10_000;
  assertEquals(pool.sweep(), []);
});

Deno.test("vip: the sweep runs at a fifth of the stale timeout, between 1 s and 60 s", () => {
  const every = (staleMs: number) =>
    new VipPool({ network: parseVipBase(undefined), staleMs }).sweepIntervalMs;
  assertEquals(every(5000), 1000);
  assertEquals(every(100_000), 20_000);
  assertEquals(every(600_000), 60_000);
  assertEquals(every(0), undefined);
});

/** Counts how often `fn` replaces files (the state file is written by rename over the old one). */
function countRenames(fn: () => void): number {
  const rename = Deno.renameSync;
  let renames = 0;
  Deno.renameSync = (from, to) => {
    renames++;
    rename(from, to);
  };
  try {
    fn();
  } finally {
    Deno.renameSync = rename;
  }
  return renames;
}

const services = (n: number) =>
  Array.from({ length: n }, (_, i) => ({
    type: "service" as const,
    namespace: `ns-${i % 50}`,
    name: `svc-${i}`,
  }));

Deno.test("vip: pre-allocating 1,000 services writes the state file once, not once per VIP", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const statePath = `${dir}/vips.json`;
    const pool = new VipPool({ network: parseVipBase(undefined), staleMs: 0, statePath });
    const targets = services(1000);
    assertEquals(countRenames(() => pool.allocateAll(targets, { pinned: true })), 1);
    assertEquals(pool.entries().length, 1000);
    assertEquals(countRenames(() => pool.allocateAll(targets)), 0, "nothing new, nothing written");
    const again = new VipPool({ network: parseVipBase(undefined), staleMs: 0, statePath });
    for (const target of [targets[0], targets[999]]) {
      assertEquals(again.allocate(target), pool.vipOf(target), "all of them were persisted");
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("vip: addresses remembered from the state file stay reserved for their targets", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const statePath = `${dir}/vips.json`;
    // A hand-edited file naming one address twice: the first target keeps it.
    await Deno.writeTextFile(
      statePath,
      JSON.stringify({
        "service/demo/hello": "198.18.0.3",
        "service/demo/twin": "198.18.0.3",
        "service/demo/db": "198.18.0.5",
      }),
    );
    const pool = new VipPool({ network: parseVipBase(undefined), staleMs: 0, statePath });
    const fresh = services(3).map((t) => pool.allocate(t));
    assertEquals(fresh, ["198.18.0.2", "198.18.0.4", "198.18.0.6"], "remembered ones skipped");
    assertEquals(pool.allocate(hello), "198.18.0.3");
    assertEquals(pool.allocate({ ...hello, name: "db" }), "198.18.0.5");
    assertEquals(pool.allocate({ ...hello, name: "twin" }), "198.18.0.7");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("vip: allocating 20,000 VIPs takes time linear in their number", () => {
  const pool = new VipPool({ network: parseVipBase(undefined), staleMs: 0 });
  const started = performance.now();
  pool.allocateAll(services(20_000));
  const ms = performance.now() - started;
  assertEquals(pool.entries().length, 20_000);
  // Linear is some 50 ms; rebuilding the reserved set per allocation (quadratic) took seconds.
  assert(ms < 3000, `20,000 allocations took ${Math.round(ms)} ms`);
});

Deno.test("vip: --vip-base forms, first VIP at base+2, TUN at base+1 (docs/compatibility.md §1)", () => {
  assertEquals(parseVipBase(undefined), { base: (198 << 24 | 18 << 16) >>> 0, prefix: 15 });
  const pool = new VipPool({ network: parseVipBase("10.99.0.0"), staleMs: 0 });
  assertEquals(pool.cidr, "10.99.0.0/16");
  assertEquals(pool.tunAddress, "10.99.0.1");
  assertEquals(pool.allocate({ type: "service", namespace: "a", name: "b" }), "10.99.0.2");
  assertThrows(() => parseVipBase("10.99.0.0/40"), /prefix length must be 8 to 30/);
  assertThrows(() => parseVipBase("nonsense"), /is not an IPv4 address or CIDR/);
});

Deno.test("vip: the same service keeps its VIP across restarts (docs/compatibility.md §3 D14)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const statePath = `${dir}/vips.json`;
    const first = new VipPool({ network: parseVipBase(undefined), staleMs: 0, statePath });
    first.allocate({ type: "service", namespace: "demo", name: "other" });
    const hello = first.allocate({ type: "service", namespace: "demo", name: "hello" });
    const second = new VipPool({ network: parseVipBase(undefined), staleMs: 0, statePath });
    assertEquals(second.allocate({ type: "service", namespace: "demo", name: "hello" }), hello);
    assert(second.allocate({ type: "service", namespace: "demo", name: "new" }) !== hello);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("vip: unused VIPs are reclaimed after the stale timeout, busy ones kept, 0 = never (docs/compatibility.md §1)", () => {
  let now = 0;
  const pool = new VipPool({ network: parseVipBase(undefined), staleMs: 5000, now: () => now });
  const idle = pool.allocate({ type: "service", namespace: "a", name: "idle" });
  const busy = pool.allocate({ type: "service", namespace: "a", name: "busy" });
  now = 10_000;
  assertEquals(pool.sweep((vip) => vip === busy), [idle]);
  assertEquals(pool.lookup(idle), undefined);
  const never = new VipPool({ network: parseVipBase(undefined), staleMs: 0, now: () => now });
  never.allocate({ type: "service", namespace: "a", name: "x" });
  now = 1e9;
  assertEquals(never.sweep(), []);
});
