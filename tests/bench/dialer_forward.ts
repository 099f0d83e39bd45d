/**
 * `kubectl port-forward` built on k8stun's port-forward dialer, for `deno task bench tier`: listens
 * on 127.0.0.1 (any port) and carries each connection to one pod port through the dialer, with
 * only the given transport. Measures a transport (e.g. the direct SPDY/3.1 upgrade) through the
 * real API server without the TUN in the way.
 *
 * Usage: dialer_forward.ts KUBECONFIG NAMESPACE POD PORT tunnel|direct|v4 [early]
 * (prints "READY <port>"). With `early` a connection is dialed as the TUN dials a port that
 * accepted recently (`--early-connect`): its bytes go out as soon as the streams are requested,
 * and the kubelet's verdict arrives later (a refusal then resets the connection).
 */
import { ApiAccess } from "../../core/k8s/api_access.ts";
import {
  createPortForwardDialer,
  type PortForwardTransport,
} from "../../plugins/portforward/mod.ts";
import { connDuplex } from "../../core/stream/conn_duplex.ts";

const [kubeconfig, namespace, name, port, transport, mode] = Deno.args;
const early = mode === "early";
const access = ApiAccess.fromText(Deno.readTextFileSync(kubeconfig));
const dialer = createPortForwardDialer({
  access,
  transports: [transport as PortForwardTransport],
});
const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
console.log(`READY ${(listener.addr as Deno.NetAddr).port}`);
for await (const conn of listener) {
  conn.setNoDelay(true);
  dialer.dial({ kind: "pod", namespace, name, port: Number(port) }, {
    signal: new AbortController().signal,
    flow: { port: Number(port), protocol: "tcp", front: early ? "tun" : "socks" },
    early,
  }).then((duplex) => {
    // Half-closes pass on both ways (conn.writable's close would close the whole socket).
    const app = connDuplex(conn);
    return Promise.all([
      duplex.accepted,
      duplex.readable.pipeTo(app.writable),
      app.readable.pipeTo(duplex.writable),
    ]);
  }).catch((error) => {
    console.error(`connection failed: ${error}`);
    try {
      conn.close();
    } catch {
      // closed already
    }
  });
}
