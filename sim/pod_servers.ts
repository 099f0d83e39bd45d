/**
 * The simulated pods' processes: a real TCP server on 127.0.0.1 for each container port, doing
 * what the fixture says (`http`, `echo`, `banner-echo`; `none` listens nowhere, so a dial is
 * refused like a port nobody listens on in a real pod).
 */
import type { PortBehaviour } from "./fixture.ts";
import { serveTcp, type TcpServer } from "./tcp_server.ts";

const encoder = new TextEncoder();

/** A running pod port server. */
export type PodPortServer = TcpServer;

/** Starts the server for one pod port; `none` returns undefined. */
export function startPodPortServer(
  pod: { namespace: string; name: string },
  behaviour: PortBehaviour,
): PodPortServer | undefined {
  if (behaviour === "none") return undefined;
  return serveTcp((conn) => serve(conn, pod, behaviour));
}

async function serve(
  conn: Deno.Conn,
  pod: { namespace: string; name: string },
  behaviour: PortBehaviour,
): Promise<void> {
  if (behaviour === "banner-echo") await writeAll(conn, encoder.encode(`${pod.name}\n`));
  if (behaviour === "echo" || behaviour === "banner-echo") {
    const buffer = new Uint8Array(64 * 1024);
    while (true) {
      const n = await conn.read(buffer);
      if (n === null) break;
      await writeAll(conn, buffer.subarray(0, n));
    }
    await conn.closeWrite().catch(() => {});
    return;
  }
  await serveHttp(conn, pod);
}

/** Minimal HTTP/1.1: answers each request with a page naming the pod; keep-alive aware. */
async function serveHttp(conn: Deno.Conn, pod: { namespace: string; name: string }): Promise<void> {
  const buffer = new Uint8Array(16 * 1024);
  let pending = "";
  while (true) {
    const n = await conn.read(buffer);
    if (n === null) return;
    pending += new TextDecoder().decode(buffer.subarray(0, n));
    let end: number;
    while ((end = pending.indexOf("\r\n\r\n")) !== -1) {
      const head = pending.slice(0, end);
      const lengthHeader = /\r\ncontent-length:\s*(\d+)/i.exec(head);
      const bodyLength = lengthHeader ? Number(lengthHeader[1]) : 0;
      if (pending.length < end + 4 + bodyLength) break;
      pending = pending.slice(end + 4 + bodyLength);
      const [requestLine] = head.split("\r\n");
      const [method, path] = requestLine.split(" ");
      const body = `hello from ${pod.name} (namespace ${pod.namespace})\n` +
        `${method} ${path}\n`;
      const close = /\r\nconnection:\s*close/i.test(head) || /HTTP\/1\.0$/.test(requestLine);
      const response = `HTTP/1.1 200 OK\r\ncontent-type: text/plain; charset=utf-8\r\n` +
        `x-pod-name: ${pod.name}\r\nx-pod-namespace: ${pod.namespace}\r\n` +
        `content-length: ${encoder.encode(body).length}\r\n` +
        `connection: ${close ? "close" : "keep-alive"}\r\n\r\n${method === "HEAD" ? "" : body}`;
      await writeAll(conn, encoder.encode(response));
      if (close) return;
    }
  }
}

/** `write()` may take fewer bytes than offered; a server must not lose the rest. */
async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let off = 0; off < bytes.length;) off += await conn.write(bytes.subarray(off));
}
