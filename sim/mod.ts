/**
 * The simulated Kubernetes cluster: an API server (HTTPS by default) serving a fixture, with pods
 * that are real TCP servers on loopback and fault hooks for tests. Used by `k8stun demo`,
 * `k8stun sim` and the test suite.
 *
 * @example
 * ```ts
 * const sim = await startSimCluster({ fixture: DEMO_FIXTURE });
 * await sim.writeKubeconfig("sim.kubeconfig");
 * // … point k8stun at it with --kubeconfig, then:
 * await sim.close();
 * ```
 */
import { SimFaults } from "./faults.ts";
import type { Fixture } from "./fixture.ts";
import { type PodPortServer, startPodPortServer } from "./pod_servers.ts";
import { listenSim } from "./http_transport.ts";
import type { SimServerContext } from "./server.ts";
import { type PodSource, type ServiceSource, SimState } from "./state.ts";
import { generateSimTls } from "./tls.ts";

export { DEMO_FIXTURE } from "./fixtures/demo.ts";
export { parseFixture } from "./fixture.ts";
export type { Fixture } from "./fixture.ts";
export { SimFaults } from "./faults.ts";
export { SERVE_ANNOTATION } from "./api_objects.ts";

/** How to start the simulated cluster. */
export interface SimOptions {
  fixture: Fixture;
  /** HTTPS with a generated CA (default true). */
  tls?: boolean;
  /** Bearer token the server requires (default: random). */
  token?: string;
  hostname?: string;
  /** Port (default 0: any free port). */
  port?: number;
  /** Tunnel SPDY over WebSocket (default true); false emulates clusters before 1.31. */
  tunnel?: boolean;
  /** Split and coalesce the tunnel's WebSocket messages at random (boundary fuzzing). */
  refragmentTunnel?: boolean;
}

/** A running simulated cluster. */
export interface SimCluster extends AsyncDisposable {
  url: string;
  token: string;
  caPem?: string;
  state: SimState;
  faults: SimFaults;
  /** A kubeconfig (YAML) for this cluster; context name `k8stun-sim`. */
  kubeconfig(namespace?: string): string;
  writeKubeconfig(path: string, namespace?: string): Promise<void>;
  setPodReady(namespace: string, name: string, ready: boolean): void;
  addPod(namespace: string, pod: PodSource): void;
  deletePod(namespace: string, name: string): void;
  addService(namespace: string, service: ServiceSource): void;
  deleteService(namespace: string, name: string): void;
  /** Forgets the change history: watches resuming from older versions get 410 Gone. */
  compact(): void;
  /** Ends every open watch stream (as an API server restart or a proxy timeout would). */
  dropWatches(): void;
  /** Port-forward upgrades accepted so far, by subprotocol ("" = none offered). */
  upgrades(): Map<string, number>;
  /** Where a pod's container port really listens. */
  podAddress(
    namespace: string,
    pod: string,
    port: number,
  ): { hostname: string; port: number } | undefined;
  close(): Promise<void>;
}

/** Starts a simulated cluster. */
export async function startSimCluster(options: SimOptions): Promise<SimCluster> {
  const state = new SimState();
  const faults = new SimFaults();
  const token = options.token ?? crypto.randomUUID().replaceAll("-", "");
  const servers = new Map<string, PodPortServer | undefined>();
  const startServers = (namespace: string, pod: PodSource) => {
    for (const port of pod.ports) {
      servers.set(
        `${namespace}/${pod.name}:${port.containerPort}`,
        startPodPortServer({ namespace, name: pod.name }, port.serve),
      );
    }
  };
  const stopServers = (namespace: string, name: string) => {
    for (const [k, server] of servers) {
      if (k.startsWith(`${namespace}/${name}:`)) {
        server?.close();
        servers.delete(k);
      }
    }
  };
  for (const ns of options.fixture.namespaces) {
    for (const pod of ns.pods) startServers(ns.name, pod);
  }
  state.load(options.fixture);
  // A pod's servers start before it is listed and stop after it is gone: whoever sees the pod
  // (or its EndpointSlice) can reach it.
  const pods = {
    add(namespace: string, pod: PodSource) {
      startServers(namespace, pod);
      try {
        state.addPod(namespace, pod);
      } catch (error) {
        stopServers(namespace, pod.name);
        throw error;
      }
    },
    remove(namespace: string, name: string) {
      state.deletePod(namespace, name);
      stopServers(namespace, name);
    },
  };
  for (const { namespace, pod, port, ...fault } of options.fixture.faults ?? []) {
    faults.portForward(namespace, pod, port, fault);
  }
  const watches = new Set<() => void>();
  const context: SimServerContext = {
    state,
    faults,
    token,
    watches,
    tunnel: options.tunnel !== false,
    refragment: options.refragmentTunnel === true,
    upgrades: new Map(),
    pods,
    async dialPodPort(namespace, pod, port) {
      const fault = faults.portForwardFault(namespace, pod, port);
      const server = servers.get(`${namespace}/${pod}:${port}`);
      if (fault?.kind === "refuse" || !server) {
        throw new Error(`dial tcp4 127.0.0.1:${port}: connect: connection refused`);
      }
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
      return fault?.kind === "reset" ? resetAfter(conn, fault.afterBytes) : conn;
    },
  };
  const tls = options.tls === false ? undefined : await generateSimTls();
  const host = options.hostname ?? "127.0.0.1";
  const server = await listenSim(context, { hostname: host, port: options.port ?? 0, tls });
  const url = `${tls ? "https" : "http"}://${host}:${server.port}`;
  const kubeconfig = (namespace = "default") =>
    [
      "apiVersion: v1",
      "kind: Config",
      "clusters:",
      "- name: k8stun-sim",
      "  cluster:",
      `    server: ${url}`,
      ...(tls ? [`    certificate-authority-data: ${btoa(tls.caPem)}`] : []),
      "users:",
      "- name: k8stun-sim",
      "  user:",
      `    token: ${token}`,
      "contexts:",
      "- name: k8stun-sim",
      "  context:",
      "    cluster: k8stun-sim",
      "    user: k8stun-sim",
      `    namespace: ${namespace}`,
      "current-context: k8stun-sim",
      "",
    ].join("\n");
  const close = async () => {
    for (const stop of [...watches]) stop();
    await server.close();
    for (const s of servers.values()) s?.close();
  };
  return {
    url,
    token,
    caPem: tls?.caPem,
    state,
    faults,
    kubeconfig,
    writeKubeconfig: (path, namespace) =>
      Deno.writeTextFile(path, kubeconfig(namespace), { mode: 0o600 }),
    setPodReady: (ns, name, ready) => state.setPodReady(ns, name, ready),
    addPod: pods.add,
    deletePod: pods.remove,
    addService: (ns, service) => state.addService(ns, service),
    deleteService: (ns, name) => state.deleteService(ns, name),
    compact: () => state.compact(),
    dropWatches: () => {
      for (const stop of [...watches]) stop();
    },
    upgrades: () => new Map(context.upgrades),
    podAddress(ns, pod, port) {
      const s = servers.get(`${ns}/${pod}:${port}`);
      return s ? { hostname: "127.0.0.1", port: s.port } : undefined;
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** Wraps a connection so it is reset after `limit` bytes from the pod. */
function resetAfter(conn: Deno.Conn, limit: number): Deno.Conn {
  let seen = 0;
  const read = conn.read.bind(conn);
  conn.read = async (buffer: Uint8Array) => {
    if (seen >= limit) {
      conn.close();
      throw new Deno.errors.ConnectionReset(
        `read tcp4 127.0.0.1:${
          (conn.remoteAddr as Deno.NetAddr).port
        }: read: connection reset by peer`,
      );
    }
    const n = await read(buffer.subarray(0, Math.min(buffer.length, limit - seen)));
    if (n !== null) seen += n;
    return n;
  };
  return conn;
}
