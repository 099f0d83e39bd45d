/**
 * Credential plugins of the kubeconfig (`users[].user.exec`), as the Kubernetes documentation
 * describes them under "client-go credential plugins" (API group client.authentication.k8s.io):
 * a command k8stun runs to get a bearer token or a client certificate, and whose answer it keeps
 * until shortly before it expires.
 *
 * What k8stun does, and where it departs from kubectl:
 * - The plugin's environment is k8stun's own, then the kubeconfig's `exec.env` on top, then
 *   `KUBERNETES_EXEC_INFO`: an ExecCredential of the kubeconfig's apiVersion whose spec says
 *   `interactive: false` and, with `provideClusterInfo`, carries the cluster (never for
 *   v1alpha1, which has no such field).
 * - k8stun is a daemon and its stdin is no terminal, so a plugin never gets one: stdin is
 *   /dev/null. `interactiveMode: Always` fails at once instead of hanging on a prompt nobody
 *   sees; `IfAvailable` and `Never` run the plugin without a terminal. kubectl refuses a v1
 *   plugin without `interactiveMode`; k8stun treats it as `IfAvailable`, as client-node did.
 * - `apiVersion` may be left out (client-node accepted that): the answer's apiVersion is then
 *   not checked, and KUBERNETES_EXEC_INFO has none. When it is set, it must be one of v1,
 *   v1beta1 or v1alpha1 and the answer must carry the same one.
 * - The answer must be an ExecCredential whose status holds a token, or a client certificate and
 *   key together (or both; half a pair is refused, as kubectl does).
 * - A plugin that has not finished within the timeout (60 s unless told) is killed: a plugin
 *   waiting for a browser login would otherwise hold every connection forever.
 * - A credential is kept per kubeconfig user while its `expirationTimestamp` (RFC 3339) is more
 *   than 10 s ahead, so a connection never starts with a token about to lapse; without one it
 *   is kept until the API server refuses it (invalidate). An `expirationTimestamp` that does not
 *   parse counts as already expired: the credential is used once and the plugin runs again
 *   next time, rather than a credential of unknown lifetime being kept forever. Concurrent
 *   requests for one user share one run of the plugin; a failed run is not kept, so the next
 *   request tries again. A changed `exec` or cluster (a reloaded kubeconfig) runs the plugin
 *   again instead of reusing what the old settings gave.
 * - Errors are one line a user can act on: they name the user and the command, add the
 *   kubeconfig's `installHint` when the command is missing (also on exit code 127, which is how
 *   sh, env(1), sudo(8) and setpriv(1) report a command they could not find when they wrap the
 *   plugin), and the last lines of the plugin's stderr when it failed. They never carry the
 *   token, nor the plugin's stdout, which holds it.
 */
import { oneLine } from "../peer_text.ts";
import { readTextUpTo } from "../stream/capped_text.ts";

/** users[].user.exec as the kubeconfig spells it (camelCase keys as in the YAML). */
export interface ExecConfig {
  command?: string;
  args?: string[];
  env?: { name: string; value: string }[] | null;
  /** client.authentication.k8s.io/v1, v1beta1 or v1alpha1. */
  apiVersion?: string;
  installHint?: string;
  provideClusterInfo?: boolean;
  /** Never | IfAvailable | Always */
  interactiveMode?: string;
  [key: string]: unknown;
}

/**
 * What spec.cluster carries when provideClusterInfo is true (the JSON keys of the
 * client.authentication.k8s.io Cluster type; certificate-authority-data is base64).
 */
export interface ExecClusterInfo {
  server: string;
  "tls-server-name"?: string;
  "insecure-skip-tls-verify"?: boolean;
  "certificate-authority-data"?: string;
  "proxy-url"?: string;
  "disable-compression"?: boolean;
  /** The cluster's `client.authentication.k8s.io/exec` extension. */
  config?: unknown;
}

/** ExecCredential.status */
export interface ExecCredentialStatus {
  token?: string;
  clientCertificateData?: string;
  clientKeyData?: string;
  expirationTimestamp?: string;
}

/**
 * The plugin could not give a credential. The message is one line a user can act on: it names
 * the command, includes the installHint when the command is missing, and the plugin's stderr
 * (its last few lines) when it failed.
 */
export class ExecCredentialError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ExecCredentialError";
  }
}

/**
 * How a command is run (tests replace it). It throws Deno.errors.NotFound when the command does
 * not exist, Deno.errors.PermissionDenied when it may not be executed, and Deno.errors.TimedOut
 * when it was killed after `timeoutMs`.
 */
export type RunCommand = (
  command: string,
  args: string[],
  env: Record<string, string>,
  timeoutMs: number,
) => Promise<{ code: number; stdout: string; stderr: string }>;

const GROUP = "client.authentication.k8s.io";
const API_VERSIONS = [`${GROUP}/v1`, `${GROUP}/v1beta1`, `${GROUP}/v1alpha1`];
const INTERACTIVE_MODES = ["Never", "IfAvailable", "Always"];
const DEFAULT_TIMEOUT_MS = 60_000;
/** A credential this close to its expiry is not handed out again: a connection needs it a while. */
const EXPIRY_MARGIN_MS = 10_000;
/** Lines of the plugin's stderr an error quotes: the end is where plugins say what went wrong. */
const STDERR_LINES = 3;
const STDERR_CHARS = 400;
/** How long a killed plugin gets to close its pipes before k8stun stops waiting for them. */
const KILL_GRACE_MS = 1_000;
/** After the plugin exited, how long its pipes may take to end (see runCommand). */
const EXITED_DRAIN_MS = 250;

/** One user's credential: being fetched, or fetched and still good. */
interface Entry {
  /** The exec settings and cluster it was fetched with. */
  settings: string;
  pending?: Promise<ExecCredentialStatus>;
  status?: ExecCredentialStatus;
  /** Epoch ms; undefined: good until invalidated. */
  expiresAt?: number;
}

/** Runs credential plugins and keeps their credentials; see the module comment. */
export class ExecCredentials {
  readonly #run: RunCommand;
  readonly #now: () => number;
  readonly #timeoutMs: number;
  readonly #entries = new Map<string, Entry>();

  constructor(deps: { run?: RunCommand; now?: () => number; timeoutMs?: number } = {}) {
    this.#run = deps.run ?? runCommand;
    this.#now = deps.now ?? Date.now;
    this.#timeoutMs = deps.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  /**
   * The credential for `key` (the kubeconfig user's name): cached while its expirationTimestamp
   * is more than 10 s ahead; without expirationTimestamp it is cached until invalidate(key).
   * Concurrent calls for one key share a single run of the plugin. A failed run is not cached.
   */
  get(key: string, exec: ExecConfig, cluster?: ExecClusterInfo): Promise<ExecCredentialStatus> {
    const settings = JSON.stringify([exec, cluster ?? null]);
    const entry = this.#entries.get(key);
    if (entry?.settings === settings) {
      if (entry.pending) return entry.pending;
      if (entry.status && this.#fresh(entry.expiresAt)) return Promise.resolve(entry.status);
    }
    const mine: Entry = { settings };
    this.#entries.set(key, mine);
    mine.pending = this.#fetch(key, exec, cluster).then(
      ({ status, expiresAt }) => {
        if (this.#entries.get(key) === mine) {
          if (expiresAt !== null && this.#fresh(expiresAt)) {
            this.#entries.set(key, { settings, status, expiresAt });
          } else {
            this.#entries.delete(key);
          }
        }
        return status;
      },
      (error: unknown) => {
        if (this.#entries.get(key) === mine) this.#entries.delete(key);
        throw error;
      },
    );
    return mine.pending;
  }

  /**
   * Forgets the cached credential of `key` (the API server answered 401 Unauthorized). A run
   * under way is left to finish and is shared: it started after the refused credential was
   * fetched, and every connection refused at once would otherwise start a plugin of its own.
   */
  invalidate(key: string): void {
    if (!this.#entries.get(key)?.pending) this.#entries.delete(key);
  }

  #fresh(expiresAt: number | undefined): boolean {
    return expiresAt === undefined || expiresAt - this.#now() > EXPIRY_MARGIN_MS;
  }

  /** One run of the plugin; expiresAt is null when the expirationTimestamp does not parse. */
  async #fetch(
    key: string,
    exec: ExecConfig,
    cluster: ExecClusterInfo | undefined,
  ): Promise<{ status: ExecCredentialStatus; expiresAt: number | null | undefined }> {
    const command = exec.command;
    if (typeof command !== "string" || command === "") {
      throw new ExecCredentialError(
        `kubeconfig user "${key}": its exec credential plugin names no command`,
      );
    }
    const plugin = `kubeconfig user "${key}": credential plugin "${command}"`;
    const apiVersion = exec.apiVersion;
    if (apiVersion !== undefined && !API_VERSIONS.includes(apiVersion)) {
      throw new ExecCredentialError(
        `${plugin} has apiVersion "${apiVersion}"; k8stun knows ${API_VERSIONS.join(", ")}`,
      );
    }
    const mode = exec.interactiveMode ?? "IfAvailable";
    if (!INTERACTIVE_MODES.includes(mode)) {
      throw new ExecCredentialError(
        `${plugin} has interactiveMode "${mode}"; it must be Never, IfAvailable or Always`,
      );
    }
    if (mode === "Always") {
      throw new ExecCredentialError(
        `${plugin} needs a terminal (interactiveMode: Always), and k8stun runs without one: ` +
          "log in once with `kubectl get ns`, and set interactiveMode: IfAvailable so the " +
          "plugin can use that login",
      );
    }

    const env = pluginEnvironment(exec, cluster);
    const args = Array.isArray(exec.args) ? exec.args.map(String) : [];
    let result: { code: number; stdout: string; stderr: string };
    try {
      result = await this.#run(command, args, env, this.#timeoutMs);
    } catch (error) {
      if (error instanceof ExecCredentialError) throw error;
      if (error instanceof Deno.errors.NotFound) {
        throw new ExecCredentialError(`${plugin} was not found${installHint(exec)}`);
      }
      if (error instanceof Deno.errors.PermissionDenied) {
        throw new ExecCredentialError(`${plugin} may not be executed (is it executable?)`);
      }
      if (error instanceof Deno.errors.TimedOut) {
        throw new ExecCredentialError(
          `${plugin} did not finish within ${this.#timeoutMs / 1000} s` +
            " (does it wait for a login? run `kubectl get ns` once to log in first)",
        );
      }
      throw new ExecCredentialError(`${plugin} could not be started: ${oneLine(String(error))}`);
    }

    if (result.code !== 0) {
      const tail = stderrTail(result.stderr);
      const hint = result.code === 127
        ? installHint(exec)
        : mode === "IfAvailable"
        ? " (if it needs you to log in, run `kubectl get ns` once)"
        : "";
      throw new ExecCredentialError(
        `${plugin} failed with exit code ${result.code}: ${
          tail || "it printed nothing on stderr"
        }` +
          hint,
      );
    }
    return parseCredential(plugin, apiVersion, result.stdout);
  }
}

/** The plugin's environment: ours, then the kubeconfig's, then what it is asked for. */
function pluginEnvironment(
  exec: ExecConfig,
  cluster: ExecClusterInfo | undefined,
): Record<string, string> {
  const env = Deno.env.toObject();
  for (const entry of exec.env ?? []) {
    if (typeof entry?.name !== "string" || entry.name === "") continue;
    // YAML turns `value: 8080` into a number; the variable is its text, as kubectl would see it.
    env[entry.name] = entry.value === undefined || entry.value === null ? "" : String(entry.value);
  }
  const withCluster = exec.provideClusterInfo === true && cluster !== undefined &&
    exec.apiVersion !== `${GROUP}/v1alpha1`;
  env["KUBERNETES_EXEC_INFO"] = JSON.stringify({
    ...(exec.apiVersion !== undefined ? { apiVersion: exec.apiVersion } : {}),
    kind: "ExecCredential",
    spec: { interactive: false, ...(withCluster ? { cluster } : {}) },
  });
  return env;
}

/** Checks the plugin's stdout; see the module comment. */
function parseCredential(
  plugin: string,
  apiVersion: string | undefined,
  stdout: string,
): { status: ExecCredentialStatus; expiresAt: number | null | undefined } {
  let output: unknown;
  try {
    output = JSON.parse(stdout);
  } catch {
    // JSON.parse's message quotes the text, and the text may hold the token.
    const what = stdout.trim() === "" ? "printed nothing" : "printed something that is not JSON";
    throw new ExecCredentialError(`${plugin} ${what} on stdout; it must print an ExecCredential`);
  }
  if (!isRecord(output)) {
    throw new ExecCredentialError(`${plugin} printed JSON that is not an ExecCredential object`);
  }
  const status = isRecord(output.status) ? output.status : undefined;
  const token = typeof status?.token === "string" && status.token !== "" ? status.token : "";
  const fail = (reason: string): never => {
    // A broken plugin may put anything anywhere; the token stays out of logs all the same.
    throw new ExecCredentialError(
      `${plugin} ${token ? reason.replaceAll(token, "[token]") : reason}`,
    );
  };
  if (output.kind !== "ExecCredential") {
    fail(`printed ${quoted(output.kind, "no kind")}, not an ExecCredential`);
  }
  if (apiVersion !== undefined && output.apiVersion !== apiVersion) {
    fail(
      `answered with apiVersion ${quoted(output.apiVersion, "(none)")}, ` +
        `but the kubeconfig asks for "${apiVersion}"`,
    );
  }
  if (!status) return fail("returned an ExecCredential without a status");
  const text = (name: string): string | undefined => {
    const value = status[name];
    if (value === undefined || value === null || value === "") return undefined;
    if (typeof value !== "string") fail(`returned a status.${name} that is not a string`);
    return value as string;
  };
  const certificate = text("clientCertificateData");
  const clientKey = text("clientKeyData");
  const expirationTimestamp = text("expirationTimestamp");
  text("token");
  if ((certificate === undefined) !== (clientKey === undefined)) {
    fail("returned a client certificate without its key, or a key without its certificate");
  }
  if (!token && certificate === undefined) {
    fail("returned neither a token nor a client certificate and key");
  }
  const credential: ExecCredentialStatus = {
    ...(token ? { token } : {}),
    ...(certificate !== undefined
      ? { clientCertificateData: certificate, clientKeyData: clientKey }
      : {}),
    ...(expirationTimestamp !== undefined ? { expirationTimestamp } : {}),
  };
  return {
    status: Object.freeze(credential),
    expiresAt: expirationTimestamp === undefined
      ? undefined
      : parseRfc3339(expirationTimestamp) ?? null,
  };
}

const RFC3339 =
  /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:[Zz]|([+-])(\d{2}):(\d{2}))$/;

/** Epoch ms of an RFC 3339 date-time (RFC 3339 §5.6), or undefined when it is not one. */
export function parseRfc3339(text: string): number | undefined {
  const match = RFC3339.exec(text);
  if (!match) return undefined;
  const [year, month, day, hour, minute, second] = match.slice(1, 7).map(Number);
  const fraction = match[7] ? Number(`0.${match[7]}`) * 1000 : 0;
  if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 60) {
    return undefined;
  }
  const local = Date.UTC(year, month - 1, day, hour, minute, second, fraction);
  // Date.UTC rolls 31 February into March; such a date is not one.
  if (new Date(Date.UTC(year, month - 1, day)).getUTCDate() !== day) return undefined;
  const sign = match[8] === "-" ? -1 : 1;
  const offsetMinutes = match[8] ? Number(match[9]) * 60 + Number(match[10]) : 0;
  if (match[8] && (Number(match[9]) > 23 || Number(match[10]) > 59)) return undefined;
  return local - sign * offsetMinutes * 60_000;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A short field of the plugin's answer, for an error; anything else is only named. */
function quoted(value: unknown, missing: string): string {
  if (value === undefined || value === null) return missing;
  if (typeof value !== "string") return `a ${typeof value}`;
  return value.length <= 80 ? `"${oneLine(value)}"` : "a long string";
}

/** The kubeconfig's hint on installing the plugin, as the end of a one-line error. */
function installHint(exec: ExecConfig): string {
  const hint = typeof exec.installHint === "string" ? oneLine(exec.installHint) : "";
  return hint ? ` — ${hint}` : " (is it installed, and on the PATH?)";
}

/** The last few lines of the plugin's stderr, on one line. */
function stderrTail(stderr: string): string {
  const lines = stderr.split(/\r?\n/).map((line) => oneLine(line, Infinity))
    .filter((line) => line !== "");
  const tail = lines.slice(-STDERR_LINES).join(" / ");
  return tail.length <= STDERR_CHARS ? tail : "…" + tail.slice(-STDERR_CHARS);
}

/**
 * The most of a plugin's stdout and stderr read. An ExecCredential is a few KiB; a plugin that
 * prints past this is killed (a runaway loop would otherwise fill memory for the whole timeout).
 */
const MAX_PLUGIN_OUTPUT = 1024 * 1024;

/** Runs the plugin without a terminal, killing it after `timeoutMs`; see RunCommand. */
const runCommand: RunCommand = async (command, args, env, timeoutMs) => {
  const child = new Deno.Command(command, {
    args,
    env,
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const kill = () => {
    try {
      child.kill("SIGKILL");
    } catch {
      // It exited just now.
    }
  };
  let overflowed = false;
  const overflow = () => {
    overflowed = true;
    kill();
  };
  // Once the plugin has exited, its pipes get a moment to drain, then what they gave is its
  // output: a process it started in the background (an agent, a cache daemon) may hold them open
  // for as long as it runs, and the credential must not wait for that.
  const exited = new AbortController();
  let drainTimer: ReturnType<typeof setTimeout> | undefined;
  child.status.then(() => drainTimer = setTimeout(() => exited.abort(), EXITED_DRAIN_MS));
  /** A pipe's text, up to {@link MAX_PLUGIN_OUTPUT} bytes; past that the plugin is killed. */
  const readCapped = async (pipe: ReadableStream<Uint8Array>) => {
    const text = await readTextUpTo(pipe, MAX_PLUGIN_OUTPUT, exited.signal);
    if (text === undefined) overflow();
    return text ?? "";
  };
  const output = Promise.all([
    child.status,
    readCapped(child.stdout),
    readCapped(child.stderr),
  ]);
  const timer = delay(timeoutMs);
  try {
    const result = await Promise.race([output, timer.done]);
    if (result === undefined) {
      kill();
      // A process the plugin started may hold its pipes open: k8stun does not wait for it.
      const grace = delay(KILL_GRACE_MS);
      try {
        await Promise.race([output.catch(() => undefined), grace.done]);
      } finally {
        grace.cancel();
      }
      throw new Deno.errors.TimedOut(`${command} did not finish within ${timeoutMs} ms`);
    }
    const [status, stdout, stderr] = result;
    if (overflowed) {
      return {
        code: status.code || 1,
        stdout: "",
        stderr: `it printed more than ${MAX_PLUGIN_OUTPUT >> 20} MiB and was stopped`,
      };
    }
    return { code: status.code, stdout, stderr };
  } finally {
    timer.cancel();
    clearTimeout(drainTimer);
  }
};

/** A timer that resolves `done` with undefined after `ms`, unless cancelled first. */
function delay(ms: number): { done: Promise<undefined>; cancel: () => void } {
  let id: ReturnType<typeof setTimeout> | undefined;
  const done = new Promise<undefined>((resolve) => {
    id = setTimeout(() => resolve(undefined), ms);
  });
  return { done, cancel: () => clearTimeout(id) };
}
