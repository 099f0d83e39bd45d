/**
 * The demo-like fixture applied through the real API: namespace `demo`, Service `hello` (port 80 →
 * named target port `http`) with two pods, and a StatefulSet-style headless `db` with `db-0`
 * (hostname/subdomain). Pods are bound to the kwok node, made Running/Ready with a status patch,
 * and each gets a kwok PortForward whose `command` bridge (`nc -N`) forwards to a local server
 * (the `command` form passes the client's half-close on; the `target` form does not).
 */
import { type ControlPlane, json } from "./control_plane.ts";

/** A local TCP server standing in for a pod's port. */
export interface PodServer {
  port: number;
  close(): void;
}

/** An HTTP server naming the pod, a banner+echo server, or a plain echo server. */
export function startPodServer(pod: string, kind: "http" | "banner-echo" | "echo"): PodServer {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  (async () => {
    for await (const conn of listener) {
      (async () => {
        const buffer = new Uint8Array(16 * 1024);
        if (kind !== "http") {
          if (kind === "banner-echo") await conn.write(new TextEncoder().encode(`${pod}\n`));
          while (true) {
            const n = await conn.read(buffer);
            if (n === null) break;
            // write() may take fewer bytes than offered: loop, or the echo loses data.
            for (let off = 0; off < n;) off += await conn.write(buffer.subarray(off, n));
          }
          await conn.closeWrite().catch(() => {});
        } else {
          const n = await conn.read(buffer);
          if (n !== null) {
            const body = `hello from ${pod}\n`;
            await conn.write(
              new TextEncoder().encode(
                `HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`,
              ),
            );
          }
        }
      })().catch(() => {}).finally(() => {
        try {
          conn.close();
        } catch {
          // closed
        }
      });
    }
  })().catch(() => {});
  return { port: (listener.addr as Deno.NetAddr).port, close: () => listener.close() };
}

/** Calls the API as the admin; any status but success (or 409 Already Exists) throws. */
export async function must(
  cp: ControlPlane,
  method: string,
  path: string,
  body: unknown,
  type?: string,
) {
  const response = await cp.request(method, path, body, type);
  if (response.status >= 300 && response.status !== 409) {
    throw new Error(`${method} ${path}: ${response.status} ${JSON.stringify(json(response))}`);
  }
  return response;
}

let nextIp = 20;

/** Creates a pod bound to the kwok node, Ready, with its port forwarded to `server`. */
export async function createPod(
  cp: ControlPlane,
  namespace: string,
  name: string,
  labels: Record<string, string>,
  port: { name: string; containerPort: number },
  server: PodServer,
  extra: { hostname?: string; subdomain?: string } = {},
): Promise<void> {
  await createReadyPod(cp, namespace, name, labels, port, `10.244.1.${nextIp++}`, extra);
  await must(cp, "POST", `/apis/kwok.x-k8s.io/v1alpha1/namespaces/${namespace}/portforwards`, {
    apiVersion: "kwok.x-k8s.io/v1alpha1",
    kind: "PortForward",
    metadata: { name, namespace },
    spec: {
      forwards: [{
        ports: [port.containerPort],
        command: ["nc", "-N", "127.0.0.1", String(server.port)],
      }],
    },
  });
}

/**
 * Creates a pod bound to the kwok node and makes it Running/Ready at `ip` with a status patch
 * (no port-forward: enough for EndpointSlices and names).
 */
export async function createReadyPod(
  cp: ControlPlane,
  namespace: string,
  name: string,
  labels: Record<string, string>,
  port: { name: string; containerPort: number },
  ip: string,
  extra: { hostname?: string; subdomain?: string } = {},
): Promise<void> {
  await must(cp, "POST", `/api/v1/namespaces/${namespace}/pods`, {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace, labels },
    spec: {
      nodeName: cp.nodeName,
      ...extra,
      containers: [{ name: "app", image: "k8stun.lab/app", ports: [{ ...port, protocol: "TCP" }] }],
    },
  });
  const now = new Date().toISOString().replace(/\.\d+Z$/, "Z");
  await must(cp, "PATCH", `/api/v1/namespaces/${namespace}/pods/${name}/status`, {
    status: {
      phase: "Running",
      podIP: ip,
      podIPs: [{ ip }],
      hostIP: "127.0.0.1",
      conditions: [
        { type: "Ready", status: "True", lastTransitionTime: now },
        { type: "ContainersReady", status: "True", lastTransitionTime: now },
      ],
    },
  }, "application/merge-patch+json");
}

/** Applies the demo-like fixture; returns the servers to close. */
export async function applyDemoFixture(cp: ControlPlane): Promise<PodServer[]> {
  await must(cp, "POST", "/api/v1/namespaces", {
    apiVersion: "v1",
    kind: "Namespace",
    metadata: { name: "demo" },
  });
  const servers: PodServer[] = [];
  for (const pod of ["hello-a", "hello-b"]) {
    const server = startPodServer(pod, "http");
    servers.push(server);
    await createPod(
      cp,
      "demo",
      pod,
      { app: "hello" },
      { name: "http", containerPort: 8080 },
      server,
    );
  }
  const db = startPodServer("db-0", "banner-echo");
  servers.push(db);
  await createPod(cp, "demo", "db-0", { app: "db" }, { name: "pg", containerPort: 5432 }, db, {
    hostname: "db-0",
    subdomain: "db",
  });
  await must(cp, "POST", "/api/v1/namespaces/demo/services", {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name: "hello", namespace: "demo" },
    spec: { selector: { app: "hello" }, ports: [{ name: "http", port: 80, targetPort: "http" }] },
  });
  await must(cp, "POST", "/api/v1/namespaces/demo/services", {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name: "db", namespace: "demo" },
    spec: { clusterIP: "None", selector: { app: "db" }, ports: [{ name: "pg", port: 5432 }] },
  });
  return servers;
}
