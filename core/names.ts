/**
 * The Kubernetes name grammar shared by DNS and the proxy fronts (docs/portforward.md §11,
 * docs/compatibility.md §4): which service, pod or SRV record a name means, if any. Pure functions.
 *
 * Forms (case-insensitive, trailing dot ignored; `<d>` is the cluster domain):
 * `svc.ns.svc.<d>`, `svc.ns.svc`, `svc.ns`; StatefulSet pods `host.svc.ns.svc.<d>`,
 * `host.svc.ns.svc`, `host.svc.ns`; pod IPs `a-b-c-d.ns.pod.<d>`, `a-b-c-d.ns.pod`;
 * SRV `_port._proto.svc.ns.svc.<d>`; and, in proxy mode, a bare `svc` in the default namespace.
 * A short form (`svc.ns`, `host.svc.ns`) is recognised only for a namespace that exists, and never
 * for a namespace named like a public top-level domain (`go.dev` stays public even when a `dev`
 * namespace exists) unless the user listed that namespace explicitly.
 */

/** What a name asks for. */
export type ClusterQuestion =
  | { kind: "service"; namespace: string; service: string }
  | { kind: "pod-hostname"; namespace: string; service: string; hostname: string }
  | { kind: "pod-ip"; namespace: string; ip: string }
  | { kind: "srv"; namespace: string; service: string; port: string; protocol: string }
  /** A name inside the cluster zone that matches no form (answered NXDOMAIN, not forwarded). */
  | { kind: "zone"; name: string };

/** What the grammar needs to know. */
export interface NameScope {
  clusterDomain: string;
  /** Namespaces that exist. */
  isNamespace(name: string): boolean;
  /** Namespaces the user listed with `-n` (may shadow public TLDs). */
  explicitNamespaces: ReadonlySet<string>;
  /** Namespace for a bare `svc` (proxy mode); undefined: bare names are not cluster names. */
  defaultNamespace?: string;
}

const LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** Generic top-level domains common enough that a namespace must not capture them. */
const PUBLIC_TLDS = new Set([
  "com",
  "net",
  "org",
  "edu",
  "gov",
  "mil",
  "int",
  "io",
  "dev",
  "app",
  "ai",
  "co",
  "me",
  "info",
  "biz",
  "xyz",
  "tech",
  "cloud",
  "online",
  "site",
  "page",
  "blog",
  "shop",
  "store",
  "local",
  "internal",
  "test",
  "example",
  "invalid",
  "localhost",
  "arpa",
  "lan",
  "home",
  "corp",
  "mail",
  "news",
  "live",
  "pro",
  "name",
  "mobi",
  "asia",
  "tv",
  "fm",
  "ly",
  "gg",
  "sh",
  "so",
  "to",
]);

/** Whether a label reads as a public top-level domain (every two-letter label is a ccTLD). */
export function isPublicTld(label: string): boolean {
  return label.length === 2 || PUBLIC_TLDS.has(label);
}

/** Parses a query name. Returns null for names that are not the cluster's. */
export function parseClusterName(raw: string, scope: NameScope): ClusterQuestion | null {
  const name = raw.toLowerCase().replace(/\.$/, "");
  if (name === "" || name.length > 253) return null;
  const domain = scope.clusterDomain.toLowerCase().replace(/^\.|\.$/g, "");
  let labels = name.split(".");
  let inZone = false;
  if (name === domain || name.endsWith(`.${domain}`)) {
    inZone = true;
    labels = name === domain ? [] : name.slice(0, -domain.length - 1).split(".");
  }
  const zoneMiss = (): ClusterQuestion | null => inZone ? { kind: "zone", name } : null;
  const last = labels.at(-1);
  if (last === "svc") return parseServiceForm(labels.slice(0, -1), true, inZone) ?? zoneMiss();
  if (last === "pod") {
    if (labels.length === 3 && LABEL.test(labels[1])) {
      const ip = dashedIp(labels[0]);
      if (ip) return { kind: "pod-ip", namespace: labels[1], ip };
    }
    return zoneMiss();
  }
  if (inZone) return zoneMiss();
  // Short forms: the namespace is the last label and must exist.
  if (labels.length === 1 && scope.defaultNamespace && LABEL.test(labels[0])) {
    return { kind: "service", namespace: scope.defaultNamespace, service: labels[0] };
  }
  if (labels.length < 2 || labels.length > 3) return null;
  const namespace = labels.at(-1)!;
  if (!scope.isNamespace(namespace)) return null;
  if (isPublicTld(namespace) && !scope.explicitNamespaces.has(namespace)) return null;
  return parseServiceForm(labels, false, false);
}

/** `svc.ns`, `host.svc.ns` and `_port._proto.svc.ns` (labels before `.svc`). */
function parseServiceForm(
  labels: string[],
  withSvc: boolean,
  inZone: boolean,
): ClusterQuestion | null {
  if (labels.length === 2 && labels.every((l) => LABEL.test(l))) {
    return { kind: "service", namespace: labels[1], service: labels[0] };
  }
  if (labels.length === 3 && labels.every((l) => LABEL.test(l))) {
    return { kind: "pod-hostname", namespace: labels[2], service: labels[1], hostname: labels[0] };
  }
  if (
    labels.length === 4 && (withSvc || inZone) && labels[0].startsWith("_") &&
    labels[1].startsWith("_") && LABEL.test(labels[2]) && LABEL.test(labels[3])
  ) {
    return {
      kind: "srv",
      port: labels[0].slice(1),
      protocol: labels[1].slice(1),
      service: labels[2],
      namespace: labels[3],
    };
  }
  return null;
}

/** `10-244-0-5` → `10.244.0.5`. */
export function dashedIp(label: string): string | undefined {
  const parts = label.split("-");
  if (parts.length !== 4) return undefined;
  if (!parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255)) return undefined;
  return parts.map(Number).join(".");
}
