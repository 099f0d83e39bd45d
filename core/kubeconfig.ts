/**
 * Finding and loading the user's kubeconfig: `--kubeconfig`, else `KUBECONFIG` (a colon list),
 * else `~/.kube/config`; under sudo, the invoking user's home (`SUDO_USER`), not root's.
 * Under sudo, credential plugins (`users[].user.exec`) run as the invoking user, with their
 * HOME, USER and LOGNAME: they read the user's caches and tokens, and a plugin named by the
 * kubeconfig must not get root. For the same reason the kubeconfig and the files it names are read
 * with the user's access (user_files.ts). Errors name the file and the context, in one line a
 * user can act on.
 */
import { ApiAccess } from "./k8s/api_access.ts";
import type { ExecConfig } from "./k8s/exec_credential.ts";
import {
  type KubeconfigDocument,
  KubeconfigFormatError,
  mergeKubeconfigs,
  parseKubeconfig,
  type UserEntry,
} from "./k8s/kubeconfig_document.ts";
import { asUserPrefix, type InvokingUser, invokingUser } from "./invoking_user.ts";
import { type ReadUserFile, userFileReader } from "./user_files.ts";
import { logger } from "./log.ts";

/** A loaded kubeconfig and what it points at. */
export interface LoadedKubeConfig {
  /** The selected context's cluster and credentials. */
  access: ApiAccess;
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
  return invokingUser(env).home;
}

/** What {@link loadKubeConfig} reads and reports through (tests replace them). */
export interface KubeConfigDeps {
  env?: (name: string) => string | undefined;
  /** Where warnings about the kubeconfig go (default: the log). */
  warn?: (message: string) => void;
  /** How the kubeconfig and the files it names are read (default: as the invoking user). */
  readFile?: ReadUserFile;
}

/** Loads the kubeconfig and selects the context. */
export function loadKubeConfig(
  options: { kubeconfig?: string; context?: string },
  deps: KubeConfigDeps = {},
): LoadedKubeConfig {
  const env = deps.env ?? Deno.env.get;
  const warn = deps.warn ?? ((message: string) => logger("kubeconfig").warn(message));
  const files = kubeconfigFiles(options.kubeconfig, env);
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
  const user = invokingUser(env);
  const readFile = deps.readFile ?? userFileReader(user);
  let document: KubeconfigDocument;
  try {
    document = mergeKubeconfigs(existing.map((file) => parseKubeconfig(readFile(file), file)));
  } catch (error) {
    const reason = error instanceof KubeconfigFormatError
      ? error.message
      : `${existing.join(":")}: ${(error as Error).message}`;
    throw new KubeConfigError(`cannot read kubeconfig ${reason}`);
  }
  let access: ApiAccess;
  try {
    access = ApiAccess.of(document, options.context, readFile);
  } catch (error) {
    throw new KubeConfigError(`kubeconfig ${existing.join(":")}: ${(error as Error).message}`);
  }
  const cluster = access.cluster;
  if (cluster["insecure-skip-tls-verify"] && !cluster.server.startsWith("http:")) {
    warn(
      `kubeconfig cluster "${cluster.name}" (${cluster.server}) sets insecure-skip-tls-verify: ` +
        "k8stun does not check the API server's certificate, so anyone on the path can read " +
        "and change the traffic and take the credentials; set certificate-authority instead",
    );
  }
  if (user.viaSudo) access = access.withUser(credentialPluginAsUser(access.user, user, env));
  return {
    access,
    files: existing,
    context: access.context,
    server: cluster.server,
    namespace: access.namespace,
  };
}

/**
 * The kubeconfig user with its exec credential plugin (`user.exec`, or the older
 * `auth-provider.config.exec`) wrapped to run as `user`: on Linux through setpriv(1) with the
 * user's uid, gid and groups, elsewhere through sudo(8) back to the user. The user's HOME, USER
 * and LOGNAME are set for it; PATH stays as sudo left it (the user's own is not known here).
 */
export function credentialPluginAsUser(
  kubeUser: UserEntry,
  user: InvokingUser,
  env: (name: string) => string | undefined = Deno.env.get,
  os: typeof Deno.build.os = Deno.build.os,
): UserEntry {
  const identity = [
    { name: "HOME", value: user.home },
    ...(user.name
      ? [{ name: "USER", value: user.name }, { name: "LOGNAME", value: user.name }]
      : []),
  ];
  const [runner, ...runnerArgs] = asUserPrefix(user, os);
  const wrap = (exec: ExecConfig | undefined): ExecConfig | undefined => {
    if (!exec?.command) return exec;
    const variables = [...(exec.env ?? []), ...identity];
    const command = [exec.command, ...(exec.args ?? [])];
    if (os === "linux") {
      return { ...exec, command: runner, args: [...runnerArgs, ...command], env: variables };
    }
    // sudo resets the environment: the variables go through env(1) after it.
    const path = env("PATH") ?? "/usr/bin:/bin:/usr/sbin:/sbin";
    return {
      ...exec,
      command: runner,
      args: [
        ...runnerArgs,
        "env",
        ...variables.map((v) => `${v.name}=${v.value}`),
        `PATH=${path}`,
        ...command,
      ],
    };
  };
  const provider = kubeUser["auth-provider"];
  const providerExec = provider?.config?.exec as ExecConfig | undefined;
  const authProvider = providerExec
    ? { ...provider!, config: { ...provider!.config, exec: wrap(providerExec) } }
    : provider;
  return {
    ...kubeUser,
    ...(kubeUser.exec ? { exec: wrap(kubeUser.exec) } : {}),
    ...(authProvider ? { "auth-provider": authProvider } : {}),
  };
}
