/**
 * The lab's real control plane: etcd, kube-apiserver, kube-controller-manager and kwok (as the one
 * node's kubelet), all on 127.0.0.1 with generated certificates and a static token file. Built by
 * `build.sh` (cached per version). Pods are scheduled by setting `spec.nodeName`; kwok makes them
 * Running/Ready and serves the node's kubelet API, whose port-forwards kwok's `PortForward`
 * objects send to local test servers through a small bridge command (`nc -N`), which passes the
 * client's half-close on (kwok's `target` form does not).
 */
import { fileURLToPath as fromFileUrl } from "node:url";
import { generateSimTls } from "../../../sim/tls.ts";

/** The admin token in the static token file (group system:masters). */
export const ADMIN_TOKEN = "k8stun-lab-admin-token";

/** A running control plane. */
export interface ControlPlane extends AsyncDisposable {
  /** `https://127.0.0.1:PORT`. */
  server: string;
  /** Kubeconfig file with the admin token and the CA. */
  kubeconfigPath: string;
  /** The CA certificate (PEM). */
  caPem: string;
  /** Name of the kwok-managed node. */
  nodeName: string;
  /** Calls the API as the admin over this control plane's kept-alive connections. */
  request(method: string, path: string, body?: unknown, contentType?: string): Promise<Response>;
  /** Stops and restarts kube-apiserver (same etcd, same port). */
  restartApiServer(): Promise<void>;
  /** Stops everything this control plane started, by PID, and removes its files. */
  stop(): Promise<void>;
}

const NODE_NAME = "kwok-node-0";

/** Builds (or finds cached) binaries; returns their directory. */
export async function controlPlaneBinaries(): Promise<string> {
  const script = fromFileUrl(new URL("./build.sh", import.meta.url));
  const out = await new Deno.Command("sh", { args: [script], stdout: "piped", stderr: "inherit" })
    .output();
  if (!out.success) throw new Error("building the lab control plane failed (see the output above)");
  return new TextDecoder().decode(out.stdout).trim().split("\n").at(-1)!;
}

/** The cached binary directory if everything is built already, else undefined (no build). */
export function cachedBinaries(): Promise<string | undefined> {
  return cachedBuild("build.sh");
}

/**
 * What a build script of this folder prints (its output directory) when everything is cached
 * already, else undefined: asked with K8STUN_LAB_NO_BUILD, it never builds.
 */
export async function cachedBuild(scriptName: string): Promise<string | undefined> {
  const script = fromFileUrl(new URL(`./${scriptName}`, import.meta.url));
  const out = await new Deno.Command("sh", {
    args: [script],
    env: { K8STUN_LAB_NO_BUILD: "1" },
    stdout: "piped",
    stderr: "null",
  }).output();
  return out.success ? new TextDecoder().decode(out.stdout).trim() : undefined;
}

/** Starts the control plane; on any failure everything started so far is stopped. */
export async function startControlPlane(options: { bin?: string } = {}): Promise<ControlPlane> {
  const bin = options.bin ?? await controlPlaneBinaries();
  const dir = await Deno.makeTempDir({ prefix: "k8stun-kube-" });
  const processes = new Map<string, Deno.ChildProcess>();
  let http: Deno.HttpClient | undefined;
  const stopAll = async () => {
    http?.close();
    http = undefined;
    for (const [name, child] of [...processes].reverse()) {
      await stopProcess(child);
      processes.delete(name);
    }
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  try {
    const [etcdClient, etcdPeer, apiPort, kcmPort, kwokPort] = await freePorts(5);
    await generatePki(dir);
    await Deno.writeTextFile(
      `${dir}/tokens.csv`,
      `${ADMIN_TOKEN},lab-admin,lab-admin-uid,"system:masters"\n`,
    );
    const server = `https://127.0.0.1:${apiPort}`;
    const caPem = await Deno.readTextFile(`${dir}/ca.crt`);
    const shared = http = client(caPem);
    const kubeconfigPath = `${dir}/kubeconfig`;
    await Deno.writeTextFile(kubeconfigPath, kubeconfig(server, caPem));

    processes.set(
      "etcd",
      spawn(dir, "etcd", `${bin}/etcd`, [
        `--data-dir=${dir}/etcd`,
        `--listen-client-urls=http://127.0.0.1:${etcdClient}`,
        `--advertise-client-urls=http://127.0.0.1:${etcdClient}`,
        `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
        `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
        `--initial-cluster=default=http://127.0.0.1:${etcdPeer}`,
        "--log-level=warn",
      ]),
    );
    const apiArgs = [
      `--etcd-servers=http://127.0.0.1:${etcdClient}`,
      "--bind-address=127.0.0.1",
      "--advertise-address=127.0.0.1",
      `--secure-port=${apiPort}`,
      `--tls-cert-file=${dir}/apiserver.crt`,
      `--tls-private-key-file=${dir}/apiserver.key`,
      `--client-ca-file=${dir}/ca.crt`,
      `--token-auth-file=${dir}/tokens.csv`,
      "--authorization-mode=Node,RBAC",
      "--service-cluster-ip-range=10.96.0.0/16",
      `--service-account-issuer=https://kubernetes.default.svc`,
      `--service-account-key-file=${dir}/sa.pub`,
      `--service-account-signing-key-file=${dir}/sa.key`,
      "--kubelet-preferred-address-types=InternalIP",
      // Pods are created before the serviceaccount controller has made `default` in a fresh
      // namespace; without a scheduler or real kubelet nothing needs the token either.
      "--disable-admission-plugins=ServiceAccount",
      "--allow-privileged=true",
      // The kubernetes Service endpoint would be 127.0.0.1, which the reconciler refuses.
      "--endpoint-reconciler-type=none",
    ];
    const startApi = () => spawn(dir, "kube-apiserver", `${bin}/kube-apiserver`, apiArgs);
    processes.set("kube-apiserver", startApi());
    await waitReady(server, caPem, 60_000);
    processes.set(
      "kube-controller-manager",
      spawn(dir, "kube-controller-manager", `${bin}/kube-controller-manager`, [
        `--kubeconfig=${kubeconfigPath}`,
        "--leader-elect=false",
        "--bind-address=127.0.0.1",
        `--secure-port=${kcmPort}`,
        "--controllers=endpoints-controller,endpointslice-controller,serviceaccount-controller," +
        "serviceaccount-token-controller,namespace-controller,garbage-collector-controller," +
        "root-ca-certificate-publisher-controller",
        `--service-account-private-key-file=${dir}/sa.key`,
        `--root-ca-file=${dir}/ca.crt`,
        "--use-service-account-credentials=false",
        // The default client limit (20 requests/s) makes the EndpointSlice controller take a
        // minute to write the slices of a 1,000-service fixture.
        "--kube-api-qps=500",
        "--kube-api-burst=1000",
      ]),
    );
    await applyKwokCrds(server, caPem);
    processes.set(
      "kwok",
      spawn(dir, "kwok", `${bin}/kwok`, [
        `--kubeconfig=${kubeconfigPath}`,
        `--manage-single-node=${NODE_NAME}`,
        "--node-ip=127.0.0.1",
        `--node-port=${kwokPort}`,
        `--server-address=127.0.0.1:${kwokPort}`,
        "--cidr=10.244.0.0/16",
        // Stages come from the (empty) Stage CRD: kwok then leaves node and pod status to us, and
        // the lab sets readiness with status patches (no config file: HOME is our temp dir).
        "--enable-crds=Stage,PortForward,ClusterPortForward",
      ], { HOME: dir }),
    );
    await createNode(server, caPem, kwokPort);
    await waitNodeReady(server, caPem, 60_000);
    return {
      server,
      kubeconfigPath,
      caPem,
      nodeName: NODE_NAME,
      request: (method, path, body, contentType) =>
        api(server, caPem, method, path, body, contentType, shared),
      async restartApiServer() {
        await stopProcess(processes.get("kube-apiserver")!);
        processes.set("kube-apiserver", startApi());
        await waitReady(server, caPem, 60_000);
      },
      stop: stopAll,
      [Symbol.asyncDispose]: stopAll,
    };
  } catch (error) {
    const logs = await tailLogs(dir, [...processes.keys()]);
    await stopAll();
    throw new Error(`${(error as Error).message}\n${logs}`);
  }
}

function spawn(
  dir: string,
  name: string,
  path: string,
  args: string[],
  env: Record<string, string> = {},
): Deno.ChildProcess {
  const log = Deno.openSync(`${dir}/${name}.log`, { write: true, create: true, append: true });
  const child = new Deno.Command(path, {
    args,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const sink = new WritableStream<Uint8Array>({ write: (c) => void log.writeSync(c) });
  child.stdout.pipeTo(sink, { preventClose: true }).catch(() => {});
  child.stderr.pipeTo(new WritableStream({ write: (c) => void log.writeSync(c) })).catch(() => {});
  child.status.finally(() => {
    try {
      log.close();
    } catch {
      // closed already
    }
  });
  return child;
}

async function stopProcess(child: Deno.ChildProcess): Promise<void> {
  try {
    child.kill("SIGTERM");
  } catch {
    return;
  }
  const exited = await Promise.race([
    child.status.then(() => true),
    new Promise<boolean>((r) => setTimeout(() => r(false), 5000)),
  ]);
  if (!exited) {
    try {
      child.kill("SIGKILL");
    } catch {
      // gone
    }
    await child.status;
  }
}

async function tailLogs(dir: string, names: string[]): Promise<string> {
  const parts: string[] = [];
  for (const name of names) {
    try {
      const text = await Deno.readTextFile(`${dir}/${name}.log`);
      parts.push(`--- ${name} (last lines) ---\n${text.split("\n").slice(-15).join("\n")}`);
    } catch {
      // no log
    }
  }
  return parts.join("\n");
}

/** Ports the kernel hands out for port 0, released right away for the children to bind. */
async function freePorts(n: number): Promise<number[]> {
  const listeners = Array.from(
    { length: n },
    () => Deno.listen({ hostname: "127.0.0.1", port: 0 }),
  );
  const ports = listeners.map((l) => (l.addr as Deno.NetAddr).port);
  for (const l of listeners) l.close();
  await Promise.resolve();
  return ports;
}

async function openssl(dir: string, args: string[]): Promise<void> {
  const out = await new Deno.Command("openssl", { args, cwd: dir, stdout: "null", stderr: "piped" })
    .output();
  if (!out.success) {
    throw new Error(`openssl ${args[0]} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
}

/** CA and serving certificate (shared with the simulated cluster), plus service-account keys. */
async function generatePki(dir: string): Promise<void> {
  const tls = await generateSimTls();
  await Deno.writeTextFile(`${dir}/ca.crt`, tls.caPem);
  await Deno.writeTextFile(`${dir}/apiserver.crt`, tls.certPem);
  await Deno.writeTextFile(`${dir}/apiserver.key`, tls.keyPem);
  await openssl(dir, ["genrsa", "-out", "sa.key", "2048"]);
  await openssl(dir, ["rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"]);
}

function kubeconfig(server: string, caPem: string): string {
  const ca = btoa(caPem);
  return `apiVersion: v1
kind: Config
clusters:
- name: lab
  cluster:
    server: ${server}
    certificate-authority-data: ${ca}
users:
- name: lab-admin
  user:
    token: ${ADMIN_TOKEN}
contexts:
- name: lab
  context:
    cluster: lab
    user: lab-admin
    namespace: default
current-context: lab
`;
}

/** An HTTP client trusting the lab CA. */
function client(caPem: string): Deno.HttpClient {
  return Deno.createHttpClient({ caCerts: [caPem] });
}

/** Calls the API as the admin, over `shared` or else a connection of its own. */
export async function api(
  server: string,
  caPem: string,
  method: string,
  path: string,
  body?: unknown,
  contentType = "application/json",
  shared?: Deno.HttpClient,
): Promise<Response> {
  const http = shared ?? client(caPem);
  try {
    const response = await fetch(`${server}${path}`, {
      method,
      client: http,
      headers: {
        authorization: `Bearer ${ADMIN_TOKEN}`,
        ...(body === undefined ? {} : { "content-type": contentType }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    await response.arrayBuffer().then((b) => {
      Object.defineProperty(response, "bytes", { value: new Uint8Array(b) });
    });
    return response;
  } finally {
    if (!shared) http.close();
  }
}

/** JSON body of a response fetched with {@link api}. */
export function json<T>(response: Response): T {
  return JSON.parse(new TextDecoder().decode((response as unknown as { bytes: Uint8Array }).bytes));
}

async function waitReady(server: string, caPem: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    try {
      const response = await api(server, caPem, "GET", "/readyz");
      if (response.status === 200) return;
      last = `status ${response.status}`;
    } catch (error) {
      last = (error as Error).message;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`kube-apiserver did not become ready within ${timeoutMs} ms (${last})`);
}

/** Minimal CRDs for kwok's Stage, PortForward and ClusterPortForward (schema left open). */
async function applyKwokCrds(server: string, caPem: string): Promise<void> {
  for (
    const [kind, plural, scope] of [
      ["PortForward", "portforwards", "Namespaced"],
      ["ClusterPortForward", "clusterportforwards", "Cluster"],
    ]
  ) {
    const response = await api(
      server,
      caPem,
      "POST",
      "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
      {
        apiVersion: "apiextensions.k8s.io/v1",
        kind: "CustomResourceDefinition",
        metadata: { name: `${plural}.kwok.x-k8s.io` },
        spec: {
          group: "kwok.x-k8s.io",
          names: { kind, listKind: `${kind}List`, plural, singular: kind.toLowerCase() },
          scope,
          versions: [{
            name: "v1alpha1",
            served: true,
            storage: true,
            subresources: { status: {} },
            schema: {
              openAPIV3Schema: { type: "object", "x-kubernetes-preserve-unknown-fields": true },
            },
          }],
        },
      },
    );
    if (response.status !== 201 && response.status !== 409) {
      throw new Error(`creating the ${kind} CRD failed: ${response.status}`);
    }
  }
  // The API serves a new CRD's endpoints a moment after it is accepted.
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    const response = await api(server, caPem, "GET", "/apis/kwok.x-k8s.io/v1alpha1/portforwards");
    if (response.status === 200) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error("the kwok CRDs were not served within 15 s");
}

async function createNode(server: string, caPem: string, kubeletPort: number): Promise<void> {
  const response = await api(server, caPem, "POST", "/api/v1/nodes", {
    apiVersion: "v1",
    kind: "Node",
    metadata: {
      name: NODE_NAME,
      labels: { "kubernetes.io/hostname": NODE_NAME, type: "kwok" },
    },
    spec: {},
  });
  if (response.status !== 201 && response.status !== 409) {
    throw new Error(`creating node ${NODE_NAME} failed: ${response.status}`);
  }
  // The API server reaches the node's kubelet (kwok) at its InternalIP and kubelet port.
  const now = new Date().toISOString();
  const patched = await api(server, caPem, "PATCH", `/api/v1/nodes/${NODE_NAME}/status`, {
    status: {
      addresses: [
        { type: "InternalIP", address: "127.0.0.1" },
        { type: "Hostname", address: NODE_NAME },
      ],
      daemonEndpoints: { kubeletEndpoint: { Port: kubeletPort } },
      conditions: [{
        type: "Ready",
        status: "True",
        reason: "KubeletReady",
        message: "kwok serves this node",
        lastHeartbeatTime: now,
        lastTransitionTime: now,
      }],
      capacity: { cpu: "1k", memory: "1Ti", pods: "1M" },
      allocatable: { cpu: "1k", memory: "1Ti", pods: "1M" },
    },
  }, "application/merge-patch+json");
  if (patched.status !== 200) throw new Error(`patching node status failed: ${patched.status}`);
}

async function waitNodeReady(server: string, caPem: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const response = await api(server, caPem, "GET", `/api/v1/nodes/${NODE_NAME}`);
    if (response.status === 200) {
      const node = json<{ status?: { conditions?: { type: string; status: string }[] } }>(response);
      if (node.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True")) return;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(
    `node ${NODE_NAME} did not become Ready within ${timeoutMs} ms (is kwok running?)`,
  );
}
