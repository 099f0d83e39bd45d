/**
 * The code that runs inside an isolated plugin's Worker. It is one self-contained function (no
 * imports, no outer references) so the host can start the Worker from a `data:` URL of its source:
 * nothing to resolve or embed, and no file read permission needed inside the Worker.
 */

/** The worker's main function; the host runs `(${isolatedPluginWorker})()` in the Worker. */
export function isolatedPluginWorker(): void {
  // deno-lint-ignore no-explicit-any
  const scope = self as any;
  const decoder = new TextDecoder();

  class DialError extends Error {
    constructor(readonly reason: string, message: string, options?: ErrorOptions) {
      super(message, options);
      this.name = "DialError";
    }
  }

  const toWire = (error: unknown) => {
    if (error instanceof Error) {
      return {
        name: error.name,
        message: error.message,
        reason: (error as { reason?: string }).reason,
        stack: error.stack,
      };
    }
    return { name: "Error", message: String(error) };
  };
  const fromWire = (e: { name: string; message: string; reason?: string }) =>
    e.reason ? new DialError(e.reason, e.message) : new Error(e.message);

  // Synchronous cluster reads: post a request, then block this worker (never the main thread) on
  // a shared buffer until the host writes the JSON answer.
  let shared: Int32Array | undefined;
  let sharedBytes: Uint8Array | undefined;
  const clusterCall = (method: string, args: string[]): unknown => {
    if (!shared || !sharedBytes) return method === "namespaces" ? [] : false;
    Atomics.store(shared, 0, 0);
    scope.postMessage({ type: "cluster", method, args });
    if (Atomics.wait(shared, 0, 0, 2000) === "timed-out") {
      throw new Error(`cluster.${method} did not answer within 2 s`);
    }
    const length = Atomics.load(shared, 1);
    return JSON.parse(decoder.decode(sharedBytes.slice(0, length)));
  };

  // deno-lint-ignore no-explicit-any
  let parts: { resolvers: any[]; dialers: any[] } = { resolvers: [], dialers: [] };
  const pendingNext = new Map<
    number,
    { resolve: (v: unknown) => void; reject: (e: Error) => void }
  >();
  const dialAborts = new Map<number, AbortController>();
  const streamAborts = new Map<number, (reason?: string) => void>();
  let nextId = 1;

  const log = (level: string) => (message: string, properties?: Record<string, unknown>) =>
    scope.postMessage({ type: "log", level, message, properties });

  scope.onmessage = async (event: MessageEvent) => {
    const msg = event.data;
    switch (msg.type) {
      case "probe": {
        try {
          const module = await import(msg.url);
          const p = module.plugin;
          // No `plugin` object: the host reports the missing export, as an unisolated load does.
          const exported = typeof p === "object" && p !== null;
          scope.postMessage({
            type: "manifest",
            manifest: !exported ? null : {
              name: p.name,
              version: p.version,
              apiVersion: p.apiVersion,
              kinds: p.kinds,
              priority: p.priority,
              permissions: p.permissions,
            },
          });
        } catch (error) {
          scope.postMessage({ type: "failed", error: toWire(error) });
        }
        return;
      }
      case "init": {
        shared = new Int32Array(msg.sab, 0, 2);
        sharedBytes = new Uint8Array(msg.sab, 8);
        try {
          const module = await import(msg.url);
          const ctx = {
            log: { debug: log("debug"), info: log("info"), warn: log("warn"), error: log("error") },
            cluster: {
              namespaces: () => clusterCall("namespaces", []),
              hasService: (ns: string, name: string) => clusterCall("hasService", [ns, name]),
              hasPod: (ns: string, name: string) => clusterCall("hasPod", [ns, name]),
            },
            config: msg.config,
            apiVersion: msg.apiVersion,
            DialError,
            dialNext: (target: unknown, options: { flow: unknown; signal?: AbortSignal }) =>
              new Promise((resolve, reject) => {
                const id = nextId++;
                pendingNext.set(id, { resolve, reject });
                options.signal?.addEventListener("abort", () => {
                  scope.postMessage({ type: "abortNext", id });
                });
                scope.postMessage({ type: "dialNext", id, target, flow: options.flow });
              }),
          };
          const result = await module.plugin.setup(ctx);
          parts = { resolvers: result?.resolvers ?? [], dialers: result?.dialers ?? [] };
          scope.postMessage({
            type: "ready",
            parts: {
              resolvers: parts.resolvers.map((r) => ({
                name: String(r.name),
                names: typeof r.resolveName === "function",
                addresses: typeof r.resolveAddress === "function",
              })),
              dialers: parts.dialers.map((d) => ({ name: String(d.name) })),
            },
          });
        } catch (error) {
          scope.postMessage({ type: "failed", error: toWire(error) });
        }
        return;
      }
      case "resolve": {
        try {
          const value = await parts.resolvers[msg.resolver][msg.method](msg.arg);
          scope.postMessage({ type: "result", id: msg.id, value: value ?? null });
        } catch (error) {
          scope.postMessage({ type: "result", id: msg.id, error: toWire(error) });
        }
        return;
      }
      case "accepts": {
        try {
          const value = await parts.dialers[msg.dialer].accepts(msg.target);
          scope.postMessage({ type: "result", id: msg.id, value: value === true });
        } catch (error) {
          scope.postMessage({ type: "result", id: msg.id, error: toWire(error) });
        }
        return;
      }
      case "dial": {
        const controller = new AbortController();
        dialAborts.set(msg.id, controller);
        try {
          const duplex = await parts.dialers[msg.dialer].dial(msg.target, {
            signal: controller.signal,
            flow: msg.flow,
          });
          streamAborts.set(msg.id, (reason) => duplex.abort(reason));
          scope.postMessage(
            { type: "dialed", id: msg.id, readable: duplex.readable, writable: duplex.writable },
            [duplex.readable, duplex.writable],
          );
        } catch (error) {
          scope.postMessage({ type: "dialed", id: msg.id, error: toWire(error) });
        } finally {
          dialAborts.delete(msg.id);
        }
        return;
      }
      case "cancel":
        dialAborts.get(msg.id)?.abort();
        return;
      case "abortStream":
        streamAborts.get(msg.id)?.(msg.reason);
        streamAborts.delete(msg.id);
        return;
      case "dialNextResult": {
        const pending = pendingNext.get(msg.id);
        pendingNext.delete(msg.id);
        if (!pending) return;
        if (msg.error) pending.reject(fromWire(msg.error));
        else {
          pending.resolve({
            readable: msg.readable,
            writable: msg.writable,
            abort: (reason?: unknown) =>
              scope.postMessage({ type: "abortNext", id: msg.id, reason: String(reason ?? "") }),
          });
        }
        return;
      }
    }
  };
}
