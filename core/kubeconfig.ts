/**
 * Finding and loading the user's kubeconfig: `--kubeconfig`, else `KUBECONFIG` (a colon list),
 * else `~/.kube/config`; under sudo, the invoking user's home (`SUDO_USER`), not root's
 * (parity P31, D-fixed). Errors name the file and the context, in one line a user can act on.
 */
import { KubeConfig } from "@kubernetes/client-node";

/** A loaded kubeconfig and what it points at. */
export interface LoadedKubeConfig {
  kubeConfig: KubeConfig;
  /** The file(s) it came from. */
  files: string[];
  context: string;
  server: string;
  /** The context's default namespace (`default` when unset). */
  namespace: string;
}

/** A kubeconfig problem, printed as one line. */
export class KubeConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "KubeConfigError";
  }
}

/** Where the kubeconfig comes from, in order of precedence. */
export function kubeconfigFiles(
  flag: string | undefined,
  env: (name: string) => string | undefined = Deno.env.get,
): string[] {
  if (flag) return [flag];
  const list = env("KUBECONFIG");
  if (list) return list.split(":").filter(Boolean);
  return [`${invokingHome(env)}/.kube/config`];
}

/** The home directory of the user who ran k8stun (the sudo caller's, not root's). */
export function invokingHome(env: (name: string) => string | undefined = Deno.env.get): string {
  const sudoUser = env("SUDO_USER");
  if (sudoUser && sudoUser !== "root" && Deno.uid?.() === 0) {
    try {
      const line = Deno.readTextFileSync("/etc/passwd").split("\n")
        .find((l) => l.startsWith(`${sudoUser}:`));
      const home = line?.split(":")[5];
      if (home) return home;
    } catch {
      // fall back to HOME
    }
  }
  return env("HOME") ?? ".";
}

/** Loads the kubeconfig and selects the context. */
export function loadKubeConfig(
  options: { kubeconfig?: string; context?: string },
): LoadedKubeConfig {
  const files = kubeconfigFiles(options.kubeconfig);
  const existing = files.filter((f) => {
    try {
      return Deno.statSync(f).isFile;
    } catch {
      return false;
    }
  });
  if (existing.length === 0) {
    throw new KubeConfigError(
      `no kubeconfig found at ${
        files.join(":")
      } — pass --kubeconfig FILE, set KUBECONFIG, or run k8stun demo`,
    );
  }
  const kubeConfig = new KubeConfig();
  try {
    if (existing.length === 1) kubeConfig.loadFromFile(existing[0]);
    else {
      const merged = new KubeConfig();
      for (const file of existing) {
        const part = new KubeConfig();
        part.loadFromFile(file);
        merged.mergeConfig(part);
        if (!merged.getCurrentContext()) merged.setCurrentContext(part.getCurrentContext());
      }
      kubeConfig.loadFromString(merged.exportConfig());
    }
  } catch (error) {
    throw new KubeConfigError(
      `cannot read kubeconfig ${existing.join(":")}: ${(error as Error).message}`,
    );
  }
  const context = options.context ?? kubeConfig.getCurrentContext();
  if (!context || !kubeConfig.getContextObject(context)) {
    const known = kubeConfig.getContexts().map((c) => c.name).join(", ") || "none";
    throw new KubeConfigError(
      `kubeconfig ${existing.join(":")} has no context "${context ?? ""}" (contexts: ${known})`,
    );
  }
  kubeConfig.setCurrentContext(context);
  const cluster = kubeConfig.getCurrentCluster();
  if (!cluster) {
    throw new KubeConfigError(`context "${context}" in ${existing.join(":")} names no cluster`);
  }
  return {
    kubeConfig,
    files: existing,
    context,
    server: cluster.server,
    namespace: kubeConfig.getContextObject(context)?.namespace ?? "default",
  };
}
