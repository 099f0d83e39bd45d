/**
 * VIPs allocated before any name is looked up: every service of the `-n` namespaces (unless
 * `--auto-discover false`) and every `--services` entry. They are pinned: they stay while their
 * service exists however long they go unused, services that appear later in those namespaces get
 * one too, and a deleted service's VIP becomes reclaimable like any other.
 */
import type { ClusterStore } from "../core/cluster/store.ts";
import { type VipPool, VipRangeExhausted } from "../core/vip.ts";
import type { RunOptions } from "./run_options.ts";

/** Which services get a pinned VIP up front. */
export type PreallocationOptions = Pick<
  RunOptions,
  "autoDiscover" | "namespaces" | "namespacesExplicit" | "services"
>;

/**
 * Allocates the pinned VIPs now and keeps them current as services come and go. Names the user
 * gave that the cluster does not have (yet) are reported through `say`. Returns the function that
 * stops following the cluster.
 */
export function preallocateVips(
  vips: Pick<VipPool, "allocate" | "allocateAll" | "unpin">,
  store: ClusterStore,
  options: PreallocationOptions,
  say: (line: string) => void,
): () => void {
  const pinned = (namespace: string, name: string) =>
    options.autoDiscover && options.namespaces.includes(namespace) ||
    options.services.some((s) => s.namespace === namespace && s.name === name);
  const discovered = options.autoDiscover
    ? store.services().filter((s) => options.namespaces.includes(s.namespace))
    : [];
  if (options.namespacesExplicit) {
    for (const ns of options.namespaces.filter((ns) => !store.namespaces().includes(ns))) {
      say(`warning: -n ${ns}: no such namespace (yet)`);
    }
  }
  for (const s of options.services) {
    if (!store.hasService(s.namespace, s.name)) {
      say(`warning: --services ${s.name}.${s.namespace}: no such service (yet)`);
    }
  }
  const wanted = [...discovered, ...options.services];
  const exhausted = vips.allocateAll(
    wanted.map((s) => ({ type: "service" as const, namespace: s.namespace, name: s.name })),
    { pinned: true },
  );
  // A full range is the user's to widen; k8stun still runs: the rest get no VIP (their names
  // answer SERVFAIL) until some are freed. Said once.
  let warned = false;
  const full = (error: VipRangeExhausted, without: string) => {
    if (!warned) say(`warning: ${without} without a VIP: ${error.message}`);
    warned = true;
  };
  if (exhausted) full(exhausted, `${exhausted.without} of ${wanted.length} services`);
  return store.onChange((change) => {
    if (change.kind !== "service") return;
    const { namespace, name } = change.service;
    const target = { type: "service" as const, namespace, name };
    if (change.type === "added" && pinned(namespace, name)) {
      try {
        vips.allocate(target, { pinned: true });
      } catch (error) {
        if (!(error instanceof VipRangeExhausted)) throw error;
        full(error, `service ${namespace}/${name}`);
      }
    } else if (change.type === "deleted") {
      vips.unpin(target);
    }
  });
}
