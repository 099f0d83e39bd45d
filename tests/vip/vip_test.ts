/** The VIP pool's reclaiming rules: pinned VIPs stay, and the sweep runs at the timeout's scale. */
import { assertEquals } from "../assert.ts";
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
