/**
 * The names k8stun may answer itself, as a few suffixes: every name the cluster grammar
 * (core/names.ts) can read as the cluster's ends in one of them, so a name that ends in none is
 * certainly someone else's and goes upstream without a look at the cluster. Split DNS hands the
 * system exactly these domains (macOS resolver files, systemd-resolved), and the packet loop
 * forwards the other names itself, without a trip through the main thread
 * (docs/architecture.md, "A DNS query"). A superset is harmless (the main thread decides those
 * names as before); a missing suffix would send a cluster name upstream, so the test suite checks
 * the grammar's forms against it.
 */
import { isPublicTld, type NameScope } from "../names.ts";

/** What the suffixes are drawn from. Plain data: it crosses to the packet loop as JSON. */
export interface NameClaims {
  /** The cluster domain, and the labels a cluster name may end with: `svc`, `pod`, namespaces. */
  suffixes: string[];
  /** Bare names are the cluster's (a default namespace is set: proxy mode). */
  bareNames: boolean;
  /** Every name may be claimed: a plugin resolver is asked about names outside the grammar. */
  everything: boolean;
}

/**
 * The claims of `scope` with these `namespaces`: the cluster domain, `svc`, `pod`, and every
 * namespace that cannot be mistaken for a public TLD unless it was listed explicitly (so
 * `go.dev` stays public while a `dev` namespace exists).
 */
export function nameClaims(
  scope: NameScope,
  namespaces: readonly string[],
  pluginsAnswerNames = false,
): NameClaims {
  const domain = scope.clusterDomain.toLowerCase().replace(/^\.|\.$/g, "");
  const own = namespaces.filter((ns) => scope.explicitNamespaces.has(ns) || !isPublicTld(ns));
  return {
    suffixes: [...new Set([domain, "svc", "pod", ...own])],
    bareNames: scope.defaultNamespace !== undefined,
    everything: pluginsAnswerNames,
  };
}

/** Answers "might this name be the cluster's?" for names in lower case, without a final dot. */
export class ClaimedNames {
  readonly #suffixes: Set<string>;

  constructor(readonly claims: NameClaims) {
    this.#suffixes = new Set(claims.suffixes);
  }

  /** False only for a name no claim can cover: it is not the cluster's. */
  mayClaim(name: string): boolean {
    if (this.claims.everything) return true;
    // A dot escaped inside a label (a name no grammar form has) is decided by the grammar.
    if (name.includes("\\")) return true;
    // Each suffix that starts at a label: `local`, `cluster.local`, `svc.cluster.local`, …
    let dot = name.length;
    do {
      dot = name.lastIndexOf(".", dot - 1);
      if (this.#suffixes.has(name.slice(dot + 1))) return true;
    } while (dot > 0);
    return this.claims.bareNames && !name.includes(".");
  }
}
