/**
 * A kubeconfig's client certificate reaches the API server (kind, minikube and kubeadm clusters
 * authenticate with one), over a connection without Nagle like every other. The server is `openssl s_server` demanding a certificate signed by the
 * test's client CA; with `-www` it answers with a page that names the certificate it received.
 */
import { assert, assertEquals, assertMatch } from "../assert.ts";
import { denoTlsConnector } from "../../core/k8s/deno_tls_socket.ts";
import { generateSimTls } from "../../sim/tls.ts";
import { noDelayOf, setConnectionNoDelay, TcpState } from "../../ffi/linux/socket_nodelay.ts";
import { concatBytes } from "../../core/stream/concat_bytes.ts";

async function openssl(dir: string, args: string[]): Promise<void> {
  const out = await new Deno.Command("openssl", { args, cwd: dir, stdout: "null", stderr: "piped" })
    .output();
  assert(out.success, new TextDecoder().decode(out.stderr));
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

Deno.test({
  name: "tls: the kubeconfig's client certificate is presented to an API server that demands one",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir();
    const server = await generateSimTls();
    await Deno.writeTextFile(`${dir}/server.crt`, server.certPem);
    await Deno.writeTextFile(`${dir}/server.key`, server.keyPem);
    await openssl(dir, [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      "client.key",
      "-out",
      "client.crt",
      "-days",
      "1",
      "-subj",
      "/CN=k8stun-test-user/O=system:masters",
    ]);
    const port = freePort();
    const child = new Deno.Command("openssl", {
      args: [
        "s_server",
        "-accept",
        `127.0.0.1:${port}`,
        "-cert",
        "server.crt",
        "-key",
        "server.key",
        "-Verify",
        "1",
        "-CAfile",
        "client.crt",
        "-www",
      ],
      cwd: dir,
      stdout: "null",
      stderr: "null",
    }).spawn();
    try {
      const noDelayPorts: number[] = [];
      const connect = denoTlsConnector({
        caCerts: [server.caPem],
        cert: await Deno.readTextFile(`${dir}/client.crt`),
        key: await Deno.readTextFile(`${dir}/client.key`),
        noDelay: async (localPort) => {
          assert(await setConnectionNoDelay(localPort), `no socket on local port ${localPort}`);
          assertEquals(await noDelayOf(localPort, TcpState.ESTABLISHED), [true]);
          noDelayPorts.push(localPort);
        },
      });
      const page = await fetchPage(connect, port);
      assertMatch(page, /k8stun-test-user/);
      // The certificate's connection is Deno.connectTls's, and still gets TCP_NODELAY.
      assertEquals(noDelayPorts.length > 0, true);
    } finally {
      child.kill();
      await child.status;
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/** GET / over a socket from `connect`, retried while s_server is still starting. */
async function fetchPage(
  connect: ReturnType<typeof denoTlsConnector>,
  port: number,
): Promise<string> {
  for (let attempt = 0;; attempt++) {
    try {
      return await new Promise<string>((resolve, reject) => {
        const socket = connect({ host: "localhost", port });
        const chunks: Uint8Array[] = [];
        socket.on("data", (chunk: Uint8Array) => chunks.push(chunk));
        socket.on("error", reject);
        socket.on("end", () => resolve(new TextDecoder().decode(concatBytes(chunks))));
        socket.write(new TextEncoder().encode("GET / HTTP/1.0\r\n\r\n"));
      });
    } catch (error) {
      if (attempt >= 20) throw error;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
