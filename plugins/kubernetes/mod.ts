/**
 * The built-in Kubernetes resolver: cluster names (through the shared name grammar) and cluster
 * addresses (ClusterIPs → their service, pod IPs → their pod) become targets.
 */
import type { PluginModule, Resolver, Target } from "../../mod.ts";
import type { ClusterView } from "../../core/cluster/types.ts";
import { type NameScope, parseClusterName } from "../../core/names.ts";

/** Builds the resolver over a cluster view. */
export function createKubernetesResolver(view: ClusterView, scope: NameScope): Resolver {
  return {
    name: "kubernetes",
    resolveName(name: string): Target | null {
      const question = parseClusterName(name, scope);
      switch (question?.kind) {
        case "service":
          return view.hasService(question.namespace, question.service)
            ? { kind: "service", namespace: question.namespace, name: question.service }
            : null;
        case "pod-hostname": {
          const pod = view.podByHostname(question.namespace, question.service, question.hostname);
          return pod ? { kind: "pod", namespace: pod.namespace, name: pod.name } : null;
        }
        case "pod-ip": {
          const pod = view.podByIp(question.ip);
          return pod && pod.namespace === question.namespace
            ? { kind: "pod", namespace: pod.namespace, name: pod.name }
            : null;
        }
        default:
          return null;
      }
    },
    resolveAddress(address: string): Target | null {
      const service = view.serviceByClusterIp(address);
      if (service) return { kind: "service", namespace: service.namespace, name: service.name };
      const pod = view.podByIp(address);
      return pod ? { kind: "pod", namespace: pod.namespace, name: pod.name } : null;
    },
  };
}

/** The resolver as a built-in plugin. */
export function kubernetesResolverPlugin(view: ClusterView, scope: NameScope): PluginModule {
  return {
    name: "kubernetes",
    version: "builtin",
    apiVersion: 1,
    kinds: ["resolver"],
    setup: () => ({ resolvers: [createKubernetesResolver(view, scope)] }),
  };
}
