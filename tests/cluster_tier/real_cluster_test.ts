/**
 * The same paths as the simulated-cluster tests, against a real kube-apiserver (etcd,
 * kube-controller-manager's EndpointSlice controller, kwok as the kubelet). Runs when the control
 * plane binaries are built (`deno task test:cluster` builds them); otherwise skipped with a reason.
 */
import { ApiAccess } from "../../core/k8s/api_access.ts";
import { assert, assertEquals, assertMatch } from "../assert.ts";
import { startClusterSync } from "../../core/cluster/sync.ts";
import { Router } from "../../core/router.ts";
import { parseVipBase, VipPool } from "../../core/vip.ts";
import { createKubernetesResolver } from "../../plugins/kubernetes/mod.ts";
import { createPortForwardDialer } from "../../plugins/portforward/mod.ts";
import { api, cachedBinaries, startControlPlane } from "../lab/kube/control_plane.ts";
import { applyDemoFixture, createPod, startPodServer } from "../lab/kube/fixtures.ts";
import { startProxyFront } from "../../cli/proxy_front.ts";

const bin = await cachedBinaries();

async function until(check: () => boolean, ms: number): Promise<void> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > ms) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 50));
  }
}

Deno.test({
  name:
    "cluster tier: names, EndpointSlices, port-forward through kwok, pod replacement and an API-server restart",
  ignore: bin === undefined,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using cp = await startControlPlane({ bin });
    const servers = await applyDemoFixture(cp);
    const kc = ApiAccess.fromText(Deno.readTextFileSync(cp.kubeconfigPath));
    const view = await startClusterSync({ access: kc, namespaces: ["demo"] });
    try {
      await view.synced;
      const store = view.store;
      await until(() => store.readyEndpoints("demo", "hello", 80).length === 2, 20_000);
      assertEquals(store.readyEndpoints("demo", "hello", 80).map((e) => e.port), [8080, 8080]);
      const vips = new VipPool({ network: parseVipBase(undefined), staleMs: 0 });
      const scope = {
        clusterDomain: "cluster.local",
        isNamespace: (ns: string) => store.namespaces().includes(ns),
        explicitNamespaces: new Set<string>(),
      };
      const transports: boolean[] = [];
      const telemetry = {
        emit(event: { type: string; reused?: boolean }) {
          if (event.type === "portforward_dial") transports.push(event.reused === true);
        },
      };
      const router = new Router({
        resolvers: [createKubernetesResolver(store, scope)],
        dialers: [createPortForwardDialer({ access: kc, telemetry })],
        cluster: store,
        vips,
      });
      const request = async (name: string, port: number, send: string) => {
        const opened = await router.open(
          { name, port, protocol: "tcp", front: "socks" },
          new AbortController().signal,
        );
        const writer = opened.duplex.writable.getWriter();
        await writer.write(new TextEncoder().encode(send));
        await writer.close();
        return await new Response(opened.duplex.readable).text();
      };
      const pods = new Set<string>();
      for (let i = 0; i < 4; i++) {
        const page = await request("hello.demo", 80, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        pods.add(/hello from (\S+)/.exec(page)![1]);
      }
      assertEquals(pods.size, 2, "both pods answer through the real API server");
      assert(
        transports.every(Boolean),
        "the real API server tunnels SPDY: every dial used a session",
      );
      await until(() => store.podByHostname("demo", "db", "db-0") !== undefined, 10_000);
      assertEquals(await request("db-0.db.demo", 5432, "x"), "db-0\nx");

      // Through k8stun's SOCKS5 front with real curl.
      const proxy = startProxyFront({
        store,
        scope: { ...scope, defaultNamespace: "demo" },
        resolvers: [],
        dialers: [createPortForwardDialer({ access: kc })],
        socks: { hostname: "127.0.0.1", port: 0 },
      });
      try {
        const curl = await new Deno.Command("curl", {
          args: [
            "-s",
            "-m",
            "10",
            "--socks5-hostname",
            `127.0.0.1:${proxy.socksAddress!.port}`,
            "http://hello.demo/",
          ],
          stdout: "piped",
        }).output();
        assertMatch(new TextDecoder().decode(curl.stdout), /^hello from hello-/);
      } finally {
        await proxy.close();
      }

      // Deleting a pod is followed; a recreated pod takes its place.
      await api(
        cp.server,
        cp.caPem,
        "DELETE",
        "/api/v1/namespaces/demo/pods/hello-a?gracePeriodSeconds=0",
      );
      await until(() => store.readyEndpoints("demo", "hello", 80).length === 1, 20_000);
      const replacement = startPodServer("hello-c", "http");
      servers.push(replacement);
      await createPod(cp, "demo", "hello-c", { app: "hello" }, {
        name: "http",
        containerPort: 8080,
      }, replacement);
      await until(
        () => store.readyEndpoints("demo", "hello", 80).some((e) => e.pod?.name === "hello-c"),
        20_000,
      );

      const before = vips.allocate({ type: "service", namespace: "demo", name: "hello" });
      await cp.restartApiServer();
      await until(() => view.healthy(), 30_000);
      assertMatch(await request("hello.demo", 80, "GET / HTTP/1.1\r\n\r\n"), /hello from hello-/);
      assertEquals(vips.allocate({ type: "service", namespace: "demo", name: "hello" }), before);
      assert(store.hasService("demo", "db"));
    } finally {
      view.close();
      for (const s of servers) s.close();
    }
  },
});

if (bin === undefined) {
  console.log("cluster tier skipped — control plane not built (deno task test:cluster builds it)");
}
