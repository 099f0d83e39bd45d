/**
 * Answers DNS questions about the cluster from the cluster view and the VIP pool
 * (docs/compatibility.md §4): A → the VIP of a service or pod (allocated on first use), AAAA and
 * other types for existing names → NOERROR with no records and an SOA (never NXDOMAIN,
 * docs/compatibility.md §3 D8), SRV for named ports, PTR for VIPs, CNAME for ExternalName,
 * NXDOMAIN with an SOA for cluster names that do not exist. Pure: no sockets; `null` means "not a cluster name, forward it".
 */
import type { Packet, Question } from "dns-packet";
import type { Resolver } from "../../mod.ts";
import type { ClusterView } from "../cluster/types.ts";
import { type ClusterQuestion, type NameScope, parseClusterName } from "../names.ts";
import type { VipPool } from "../vip.ts";

/** TTL of cluster answers (≤ 60 s, docs/compatibility.md §4). */
export const CLUSTER_TTL = 30;

/** The parts of a response the server encodes. */
export interface ClusterAnswer {
  rcode: "NOERROR" | "NXDOMAIN" | "SERVFAIL";
  answers: Packet["answers"];
  authorities: Packet["authorities"];
}

/** Answers cluster questions. */
export class ClusterAnswerer {
  /**
   * @param resolvers plugin resolvers consulted for names outside the cluster grammar (custom
   *   suffixes such as `*.internal`); a service or pod they return gets a VIP like any other.
   */
  constructor(
    readonly view: ClusterView,
    readonly vips: VipPool,
    readonly scope: NameScope,
    readonly resolvers: Resolver[] = [],
  ) {}

  /** The answer for one question, or null when no one claims the name (forward it upstream). */
  async answer(question: Question): Promise<ClusterAnswer | null> {
    const local = this.answerCluster(question);
    if (local || this.resolvers.length === 0 || question.type === "PTR") return local;
    const name = question.name.toLowerCase().replace(/\.$/, "");
    for (const resolver of this.resolvers) {
      const target = await resolver.resolveName?.(name);
      if (!target) continue;
      if (target.kind === "host") return null;
      if (question.type !== "A") return this.#negative("NOERROR");
      const vip = this.vips.allocate({
        type: target.kind,
        namespace: target.namespace,
        name: target.name,
      });
      return this.#ok([{ type: "A", name, ttl: CLUSTER_TTL, data: vip }]);
    }
    return null;
  }

  /** The answer from the cluster grammar alone, or null when the name is not the cluster's. */
  answerCluster(question: Question): ClusterAnswer | null {
    const name = question.name.toLowerCase().replace(/\.$/, "");
    if (question.type === "PTR") return this.#ptr(name);
    const parsed = parseClusterName(name, this.scope);
    if (!parsed) return null;
    const found = this.#resolve(parsed, name, question.type);
    if (!found) return this.#negative("NXDOMAIN");
    return found;
  }

  #resolve(q: ClusterQuestion, name: string, type: string): ClusterAnswer | undefined {
    switch (q.kind) {
      case "zone":
        return undefined;
      case "service": {
        const service = this.view.service(q.namespace, q.service);
        if (!service) return undefined;
        if (service.type === "ExternalName" && service.externalName) {
          return this.#ok([{ type: "CNAME", name, ttl: CLUSTER_TTL, data: service.externalName }]);
        }
        if (type !== "A" && type !== "ANY") return this.#negative("NOERROR");
        if (service.headless) return this.#headless(q.namespace, q.service, name);
        const vip = this.vips.allocate({
          type: "service",
          namespace: q.namespace,
          name: q.service,
        });
        return this.#ok([{ type: "A", name, ttl: CLUSTER_TTL, data: vip }]);
      }
      case "pod-hostname": {
        const pod = this.view.podByHostname(q.namespace, q.service, q.hostname);
        if (!pod) return undefined;
        if (type !== "A" && type !== "ANY") return this.#negative("NOERROR");
        const vip = this.vips.allocate({ type: "pod", namespace: pod.namespace, name: pod.name });
        return this.#ok([{ type: "A", name, ttl: CLUSTER_TTL, data: vip }]);
      }
      case "pod-ip": {
        const pod = this.view.podByIp(q.ip);
        if (!pod || pod.namespace !== q.namespace) return undefined;
        if (type !== "A" && type !== "ANY") return this.#negative("NOERROR");
        const vip = this.vips.allocate({ type: "pod", namespace: pod.namespace, name: pod.name });
        return this.#ok([{ type: "A", name, ttl: CLUSTER_TTL, data: vip }]);
      }
      case "srv": {
        const service = this.view.service(q.namespace, q.service);
        if (!service) return undefined;
        const port = service.ports.find((p) =>
          p.name === q.port && p.protocol.toLowerCase() === q.protocol.toLowerCase()
        );
        if (!port) return undefined;
        if (type !== "SRV" && type !== "ANY") return this.#negative("NOERROR");
        if (service.headless) return this.#headlessSrv(q.namespace, q.service, port.port, name);
        const target = `${q.service}.${q.namespace}.svc.${this.scope.clusterDomain}`;
        return this.#ok([{
          type: "SRV",
          name,
          ttl: CLUSTER_TTL,
          data: { priority: 0, weight: 100, port: port.port, target },
        }]);
      }
    }
  }

  /**
   * A headless service names its ready pods, as cluster DNS does: one A record per pod, each the
   * pod's own VIP (pod IPs are not reachable from here). No ready pod: the name exists, no data.
   */
  #headless(namespace: string, service: string, name: string): ClusterAnswer {
    const pods = new Map<string, string>();
    for (const endpoint of this.view.readyAddresses(namespace, service)) {
      if (!endpoint.pod || pods.has(endpoint.pod.name)) continue;
      pods.set(endpoint.pod.name, this.vips.allocate({ type: "pod", ...endpoint.pod }));
    }
    if (pods.size === 0) return this.#negative("NOERROR");
    return this.#ok(
      [...pods.values()].map((vip) => ({ type: "A" as const, name, ttl: CLUSTER_TTL, data: vip })),
    );
  }

  /**
   * SRV of a headless service's port: one record per ready pod, as cluster DNS gives it — the
   * target is the pod's own name (`hostname.service.ns.svc.<domain>` for a pod with a hostname,
   * else `a-b-c-d.ns.pod.<domain>`), the port the pod's endpoint port, since a client connects to
   * the pod itself.
   */
  #headlessSrv(namespace: string, service: string, port: number, name: string): ClusterAnswer {
    const domain = this.scope.clusterDomain;
    const records = new Map<string, { port: number; target: string }>();
    for (const endpoint of this.view.readyEndpoints(namespace, service, port)) {
      const target = endpoint.hostname
        ? `${endpoint.hostname}.${service}.${namespace}.svc.${domain}`
        : `${endpoint.ip.replaceAll(".", "-")}.${namespace}.pod.${domain}`;
      records.set(target, { port: endpoint.port, target });
    }
    if (records.size === 0) return this.#negative("NOERROR");
    return this.#ok([...records.values()].map((data) => ({
      type: "SRV" as const,
      name,
      ttl: CLUSTER_TTL,
      data: { priority: 0, weight: Math.floor(100 / records.size), ...data },
    })));
  }

  /** PTR for a VIP: the service's or pod's canonical name. */
  #ptr(name: string): ClusterAnswer | null {
    const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)\.in-addr\.arpa$/.exec(name);
    if (!m) return null;
    const ip = `${m[4]}.${m[3]}.${m[2]}.${m[1]}`;
    if (!this.vips.contains(ip)) return null;
    const target = this.vips.lookup(ip);
    if (!target) return this.#negative("NXDOMAIN");
    const domain = this.scope.clusterDomain;
    const pod = target.type === "pod" ? this.view.pod(target.namespace, target.name) : undefined;
    const canonical = target.type === "service"
      ? `${target.name}.${target.namespace}.svc.${domain}`
      : pod?.hostname && pod.subdomain
      ? `${pod.hostname}.${pod.subdomain}.${target.namespace}.svc.${domain}`
      : `${(pod?.ip ?? ip).replaceAll(".", "-")}.${target.namespace}.pod.${domain}`;
    return this.#ok([{ type: "PTR", name, ttl: CLUSTER_TTL, data: canonical }]);
  }

  #ok(answers: Packet["answers"]): ClusterAnswer {
    return { rcode: "NOERROR", answers, authorities: [] };
  }

  /** NODATA or NXDOMAIN, with the zone's SOA so resolvers cache it negatively (RFC 2308). */
  #negative(rcode: "NOERROR" | "NXDOMAIN"): ClusterAnswer {
    const zone = this.scope.clusterDomain;
    return {
      rcode,
      answers: [],
      authorities: [{
        type: "SOA",
        name: zone,
        ttl: CLUSTER_TTL,
        data: {
          mname: `ns.dns.${zone}`,
          rname: `hostmaster.${zone}`,
          serial: 1,
          refresh: 7200,
          retry: 1800,
          expire: 86400,
          minimum: CLUSTER_TTL,
        },
      }],
    };
  }
}
