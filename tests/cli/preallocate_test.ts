/** Pinned VIPs for the `-n` namespaces and `--services`, kept current as services come and go. */
import { assertEquals } from "../assert.ts";
import { ClusterStore } from "../../core/cluster/store.ts";
import type { VipTarget } from "../../core/telemetry.ts";
import { preallocateVips, type PreallocationOptions } from "../../cli/preallocate.ts";
import { parseVipBase, VipPool } from "../../core/vip.ts";

function service(store: ClusterStore, namespace: string, name: string): void {
  store.applyService({
    metadata: { namespace, name },
    spec: { clusterIP: "10.96.0.1", ports: [{ port: 80 }] },
  });
}

function recordingPool() {
  const events: string[] = [];
  const show = (t: VipTarget) => `${t.name}.${t.namespace}`;
  return {
    events,
    vips: {
      allocate(target: VipTarget, options: { pinned?: boolean } = {}) {
        events.push(`allocate ${show(target)}${options.pinned ? " pinned" : ""}`);
        return "198.18.0.9";
      },
      allocateAll(targets: Iterable<VipTarget>, options: { pinned?: boolean } = {}) {
        for (const t of targets) this.allocate(t, options);
        return undefined;
      },
      unpin(target: VipTarget) {
        events.push(`unpin ${show(target)}`);
      },
    },
  };
}

const options: PreallocationOptions = {
  autoDiscover: true,
  namespaces: ["demo"],
  namespacesExplicit: true,
  services: [{ namespace: "other", name: "api" }],
};

Deno.test("preallocate: services of the -n namespaces and --services get pinned VIPs, and later ones too", () => {
  const store = new ClusterStore();
  store.applyNamespace({ metadata: { name: "demo" } });
  store.applyNamespace({ metadata: { name: "other" } });
  service(store, "demo", "hello");
  service(store, "other", "api");
  service(store, "other", "unlisted");
  const { events, vips } = recordingPool();
  const said: string[] = [];
  const stop = preallocateVips(vips, store, options, (line) => said.push(line));
  assertEquals(events, ["allocate hello.demo pinned", "allocate api.other pinned"]);
  assertEquals(said, []);

  service(store, "demo", "late");
  service(store, "other", "late");
  store.deleteService({ metadata: { namespace: "demo", name: "hello" } });
  assertEquals(events.slice(2), ["allocate late.demo pinned", "unpin hello.demo"]);

  stop();
  service(store, "demo", "after-stop");
  assertEquals(events.length, 4, "stopped following the cluster");
});

Deno.test("preallocate: --auto-discover false pins only --services; missing names are reported", () => {
  const store = new ClusterStore();
  const { events, vips } = recordingPool();
  const said: string[] = [];
  preallocateVips(vips, store, { ...options, autoDiscover: false }, (line) => said.push(line));
  assertEquals(events, ["allocate api.other pinned"]);
  assertEquals(said, [
    "warning: -n demo: no such namespace (yet)",
    "warning: --services api.other: no such service (yet)",
  ]);
});

Deno.test("preallocate: a VIP range too small for the services is said once, with what to do; k8stun goes on and the first get VIPs", () => {
  const store = new ClusterStore();
  store.applyNamespace({ metadata: { name: "demo" } });
  for (const name of ["a", "b", "c", "d", "e", "f"]) service(store, "demo", name);
  // A /29 holds four VIPs: not its base, the TUN's, the DNS address or the broadcast one.
  const vips = new VipPool({ network: parseVipBase("10.99.0.0/29"), staleMs: 0 });
  const said: string[] = [];
  preallocateVips(vips, store, { ...options, services: [] }, (line) => said.push(line));
  assertEquals(vips.entries().length, 4);
  assertEquals(said.length, 1, said.join("\n"));
  assertEquals(
    said[0],
    "warning: 2 of 6 services without a VIP: the VIP range 10.99.0.0/29 is exhausted (4 VIPs): " +
      "widen --vip-base (the default /15 holds 131,068), or pre-allocate fewer " +
      "(--auto-discover=false, fewer --services)",
  );
  service(store, "demo", "late"); // no room either: not said again, and nothing thrown
  assertEquals(said.length, 1);
  store.deleteService({ metadata: { namespace: "demo", name: "a" } });
});
