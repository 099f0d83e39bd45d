/**
 * Runs a third-party plugin in its own Worker with only the Deno permissions it declares
 * (`plugin.permissions`: net, read, env; never write, run, ffi or sys). The plugin module is
 * first imported in a Worker with no permissions at all to read its manifest, then set up in a
 * Worker holding exactly the declared permissions. Its resolvers and dialers are proxied: calls
 * go over messages, a dialed connection's streams are transferred, and cluster reads block the
 * Worker (never the tunnel) on a shared buffer. A Worker that dies fails its pending calls and
 * every later one, naming the plugin; the tunnel carries on.
 *
 * Needs Deno's worker options, which `deno.json` enables for every run, test and compile of
 * k8stun (`"unstable": ["worker-options"]`); Deno exits the process when they are off.
 */
import {
  API_VERSION,
  type Dialer,
  DialError,
  type DialFailure,
  type Duplex,
  type PluginModule,
  type Resolver,
  type Target,
} from "../../../mod.ts";
import { pluginLogger } from "../../log.ts";
import { guardParts } from "../guard.ts";
import { DialsInProgress } from "../dials_in_progress.ts";
import type { LinkedPlugin } from "../link.ts";
import { DEFAULT_PRIORITY, type LoadedPlugin, type PluginEnvironment } from "../types.ts";
import { validatePluginModule } from "../manifest.ts";
import type { HostMessage, WireError, WireParts, WorkerMessage } from "./protocol.ts";
import { isolatedPluginWorker } from "./runtime.ts";

const WORKER_URL = `data:application/javascript,${
  encodeURIComponent(`(${isolatedPluginWorker.toString()})();`)
}`;

const SHARED_BYTES = 256 * 1024;

type Permissions = NonNullable<PluginModule["permissions"]>;

/** Deno Worker permissions for what a plugin declared; everything else is denied. */
export function workerPermissions(declared: Permissions | undefined): Record<string, unknown> {
  const grant = (value: string[] | boolean | undefined) =>
    value === true ? "inherit" : Array.isArray(value) && value.length > 0 ? value : false;
  return {
    net: grant(declared?.net),
    read: grant(declared?.read),
    env: grant(declared?.env),
    write: false,
    run: false,
    ffi: false,
    sys: false,
    import: false,
  };
}

/**
 * Starts a plugin isolated in a Worker holding only the permissions its manifest declares (read
 * by {@link probeManifest}). DNS-mode plugins cannot run this way: they change system files.
 */
export async function startIsolatedPlugin(
  linked: LinkedPlugin,
  manifest: PluginModule,
  entry: string,
  env: PluginEnvironment,
): Promise<LoadedPlugin> {
  const worker = new IsolatedWorker(manifest, entry, env, linked.describe);
  const parts = await worker.start(linked.url, env.config?.[manifest.name] ?? {});
  return {
    name: manifest.name,
    version: manifest.version,
    kinds: [...manifest.kinds],
    priority: manifest.priority ?? DEFAULT_PRIORITY,
    source: entry,
    builtin: false,
    permissions: manifest.permissions,
    isolated: true,
    close: () => worker.terminate(),
    parts: guardParts(manifest.name, parts, linked.describe),
  };
}

/**
 * Reads a plugin's manifest (name, kinds, permissions…) by importing it in a Worker with no
 * permissions at all: whatever its top-level code tries, it can neither read nor write nor
 * connect.
 */
export async function probeManifest(linked: LinkedPlugin, entry: string): Promise<PluginModule> {
  const describe = linked.describe;
  const worker = new Worker(WORKER_URL, {
    type: "module",
    deno: { permissions: "none" },
  } as WorkerOptions);
  try {
    const reply = await new Promise<WorkerMessage>((resolve, reject) => {
      worker.onmessage = (event) => resolve(event.data);
      worker.onerror = (event) => {
        event.preventDefault();
        reject(new Error(`${entry}: failed to load: ${describe(event.message)}`));
      };
      worker.postMessage({ type: "probe", url: linked.url } satisfies HostMessage);
    });
    if (reply.type === "failed") {
      throw new Error(`${entry}: failed to load: ${describe(reply.error.message)}`);
    }
    if (reply.type !== "manifest") throw new Error(`${entry}: unexpected reply ${reply.type}`);
    const namespace = reply.manifest === null ? {} : { plugin: { ...reply.manifest, setup() {} } };
    return validatePluginModule(namespace, entry);
  } finally {
    worker.terminate();
  }
}

/** The host side of one isolated plugin. */
class IsolatedWorker {
  readonly #worker: Worker;
  readonly #sab = new SharedArrayBuffer(8 + SHARED_BYTES);
  readonly #pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  readonly #streams = new Map<number, Duplex>();
  readonly #nextDials = new Map<number, AbortController>();
  readonly #dials: DialsInProgress;
  readonly #log;
  #nextId = 1;
  #dead: Error | undefined;

  constructor(
    readonly manifest: PluginModule,
    readonly entry: string,
    readonly env: PluginEnvironment,
    readonly describe: (text: string) => string,
  ) {
    this.#log = pluginLogger(manifest.name);
    this.#dials = new DialsInProgress(manifest.name);
    this.#worker = new Worker(WORKER_URL, {
      type: "module",
      deno: { permissions: workerPermissions(manifest.permissions) },
    } as WorkerOptions);
    this.#worker.onerror = (event) => {
      event.preventDefault();
      this.#die(new Error(`plugin worker crashed: ${describe(event.message)}`));
    };
    this.#worker.onmessageerror = () =>
      this.#die(new Error("plugin worker sent an unreadable message"));
  }

  start(
    url: string,
    config: Record<string, string>,
  ): Promise<{ resolvers: Resolver[]; dialers: Dialer[] }> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(
          new Error(
            `${this.entry}: plugin "${this.manifest.name}" setup did not finish within 10000 ms`,
          ),
        );
        this.terminate();
      }, 10_000);
      this.#worker.onmessage = (event: MessageEvent<WorkerMessage>) => {
        const msg = event.data;
        if (msg.type === "ready") {
          clearTimeout(timer);
          this.#worker.onmessage = (e: MessageEvent<WorkerMessage>) => this.#onMessage(e.data);
          resolve(this.#proxies(msg.parts));
        } else if (msg.type === "failed") {
          clearTimeout(timer);
          this.terminate();
          reject(
            new Error(
              `${this.entry}: plugin "${this.manifest.name}" setup failed: ${
                this.describe(msg.error.message)
              }`,
            ),
          );
        } else {
          this.#onMessage(msg);
        }
      };
      this.#post({ type: "init", url, config, apiVersion: API_VERSION, sab: this.#sab });
    });
  }

  terminate(): void {
    this.#die(new Error("plugin stopped"));
    this.#worker.terminate();
  }

  #proxies(parts: WireParts): { resolvers: Resolver[]; dialers: Dialer[] } {
    const resolvers = parts.resolvers.map((r, index): Resolver => ({
      name: r.name,
      resolveName: r.names
        ? (name) =>
          this.#call({
            type: "resolve",
            id: 0,
            method: "resolveName",
            resolver: index,
            arg: name,
          }) as Promise<Target | null>
        : undefined,
      resolveAddress: r.addresses
        ? (address) =>
          this.#call({
            type: "resolve",
            id: 0,
            method: "resolveAddress",
            resolver: index,
            arg: address,
          }) as Promise<
            Target | null
          >
        : undefined,
    }));
    const dialers = parts.dialers.map((d, index): Dialer =>
      this.#dials.track({
        name: d.name,
        accepts: (target) =>
          this.#call({ type: "accepts", id: 0, dialer: index, target }) as Promise<boolean>,
        dial: (target, options) => {
          const id = this.#nextId++;
          const onAbort = () => this.#post({ type: "cancel", id });
          options.signal.addEventListener("abort", onAbort, { once: true });
          return (this.#await(id, {
            type: "dial",
            id,
            dialer: index,
            target,
            flow: options.flow,
          }) as Promise<Duplex>)
            .finally(() => options.signal.removeEventListener("abort", onAbort));
        },
      })
    );
    return { resolvers, dialers };
  }

  #call(message: HostMessage & { id: number }): Promise<unknown> {
    const id = this.#nextId++;
    return this.#await(id, { ...message, id } as HostMessage);
  }

  #await(id: number, message: HostMessage): Promise<unknown> {
    if (this.#dead) return Promise.reject(this.#dead);
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#post(message);
    });
  }

  #post(message: HostMessage, transfer: Transferable[] = []): void {
    try {
      this.#worker.postMessage(message, transfer);
    } catch (error) {
      this.#die(error instanceof Error ? error : new Error(String(error)));
    }
  }

  #onMessage(msg: WorkerMessage): void {
    switch (msg.type) {
      case "result":
        return this.#settle(msg.id, msg.error, msg.value);
      case "dialed": {
        if (msg.error || !msg.readable || !msg.writable) {
          return this.#settle(
            msg.id,
            msg.error ?? { name: "Error", message: "dial returned no streams" },
          );
        }
        const id = msg.id;
        const duplex: Duplex = {
          readable: msg.readable,
          writable: msg.writable,
          abort: (reason) => this.#post({ type: "abortStream", id, reason: String(reason ?? "") }),
        };
        return this.#settle(id, undefined, duplex);
      }
      case "log":
        return this.#log[msg.level](msg.message, msg.properties);
      case "cluster":
        return this.#answerCluster(msg.method, msg.args);
      case "dialNext":
        return void this.#dialNext(msg.id, msg);
      case "abortNext": {
        this.#nextDials.get(msg.id)?.abort();
        this.#streams.get(msg.id)?.abort("aborted by plugin");
        this.#streams.delete(msg.id);
        return;
      }
    }
  }

  #settle(id: number, error: WireError | undefined, value?: unknown): void {
    const pending = this.#pending.get(id);
    if (!pending) return;
    this.#pending.delete(id);
    if (error) pending.reject(toError(error));
    else pending.resolve(value);
  }

  async #dialNext(id: number, msg: Extract<WorkerMessage, { type: "dialNext" }>): Promise<void> {
    const controller = new AbortController();
    this.#nextDials.set(id, controller);
    try {
      if (!this.env.dialers) throw new DialError("unreachable", "no dialer chain in this context");
      // The plugin's message names a target; only the dial it wraps may be continued, and with
      // k8stun's own record of that dial, not the plugin's copy.
      const wrapped = this.#dials.continuing(msg.target);
      const duplex = await this.env.dialers.dialAfter(this.manifest.name, wrapped.target, {
        signal: AbortSignal.any([controller.signal, wrapped.options.signal]),
        flow: wrapped.options.flow,
      });
      this.#streams.set(id, duplex);
      this.#post({
        type: "dialNextResult",
        id,
        readable: duplex.readable,
        writable: duplex.writable,
      }, [
        duplex.readable as unknown as Transferable,
        duplex.writable as unknown as Transferable,
      ]);
    } catch (error) {
      const e = error instanceof Error ? error : new Error(String(error));
      this.#post({
        type: "dialNextResult",
        id,
        error: { name: e.name, message: e.message, reason: (e as DialError).reason },
      });
    } finally {
      this.#nextDials.delete(id);
    }
  }

  /** Answers a blocking cluster read: JSON into the shared buffer, then wake the Worker. */
  #answerCluster(method: "namespaces" | "hasService" | "hasPod", args: string[]): void {
    const state = new Int32Array(this.#sab, 0, 2);
    let value: unknown;
    try {
      const cluster = this.env.cluster;
      value = method === "namespaces"
        ? cluster.namespaces()
        : method === "hasService"
        ? cluster.hasService(args[0], args[1])
        : cluster.hasPod(args[0], args[1]);
    } catch {
      value = method === "namespaces" ? [] : false;
    }
    let bytes = new TextEncoder().encode(JSON.stringify(value));
    if (bytes.length > SHARED_BYTES) bytes = new TextEncoder().encode("[]");
    new Uint8Array(this.#sab, 8).set(bytes);
    Atomics.store(state, 1, bytes.length);
    Atomics.store(state, 0, 1);
    Atomics.notify(state, 0);
  }

  #die(error: Error): void {
    if (this.#dead) return;
    this.#dead = error;
    for (const pending of this.#pending.values()) pending.reject(error);
    this.#pending.clear();
    for (const controller of this.#nextDials.values()) controller.abort();
  }
}

function toError(error: WireError): Error {
  const reasons: DialFailure[] = ["refused", "unreachable", "timeout", "forbidden", "error"];
  if (error.reason && reasons.includes(error.reason as DialFailure)) {
    return new DialError(error.reason as DialFailure, error.message);
  }
  const e = new Error(error.message);
  e.name = error.name;
  if (error.stack) e.stack = error.stack;
  return e;
}
