/**
 * The v4 channel port-forward protocol, kubelet side (docs/portforward.md §8): one WebSocket, data
 * channel 2i and error channel 2i+1 per requested port, the port as u16 little-endian sent first on
 * both channels before dialling, one pod TCP connection per port entry, error text
 * `error forwarding port P to pod <name>, uid <uid>: <err>` on a failed dial, and Close 1000 only
 * when every port has finished.
 */
import { forwardingError, podReset, type PortForwardContext } from "./types.ts";

/** An accepted WebSocket, as the protocol engines use it. */
export interface MessageSocket {
  send(data: Uint8Array | string): void;
  /** Close with a status code (1000 = normal). */
  close(code: number): void;
  isOpen(): boolean;
  onMessage(listener: (data: Uint8Array | string) => void): void;
  onClose(listener: () => void): void;
}

/** Serves one upgraded v4 WebSocket. `base64` selects `v4.base64.channel.k8s.io` framing. */
export function serveV4PortForward(
  socket: MessageSocket,
  ports: number[],
  ctx: PortForwardContext,
  base64: boolean,
): void {
  const conns: (Deno.Conn | undefined)[] = new Array(ports.length);
  // Client bytes may arrive before the pod connection is up; each port's writes queue behind its
  // dial and behind each other, in order.
  const writes: Promise<unknown>[] = ports.map(() => Promise.resolve());
  const dials: Promise<Deno.Conn>[] = [];
  let remaining = ports.length;
  const send = (channel: number, payload: Uint8Array) => {
    if (!socket.isOpen()) return;
    if (base64) {
      let binary = "";
      for (const b of payload) binary += String.fromCharCode(b);
      socket.send(String.fromCharCode(48 + channel) + btoa(binary));
    } else {
      const message = new Uint8Array(payload.length + 1);
      message[0] = channel;
      message.set(payload, 1);
      socket.send(message);
    }
  };
  const finishOne = () => {
    if (--remaining === 0 && socket.isOpen()) socket.close(1000);
  };
  {
    ports.forEach((port, i) => {
      if (ctx.stalls(port)) return; // never answered: no prefixes, no dial
      const prefix = new Uint8Array([port & 0xff, port >> 8]);
      send(2 * i, prefix);
      send(2 * i + 1, prefix);
      ctx.onStream?.("open", port);
      const dial = ctx.dialPodPort(port);
      dials[i] = dial;
      dial.then(async (conn) => {
        conns[i] = conn;
        const buffer = new Uint8Array(32 * 1024);
        try {
          while (true) {
            const n = await conn.read(buffer);
            if (n === null) break;
            send(2 * i, buffer.subarray(0, n));
          }
        } catch (error) {
          // Reset by the pod: the kubelet reports it (closed by the client: nothing to say).
          if (podReset(error)) send(2 * i + 1, forwardingError(ctx, port, error));
        } finally {
          ctx.onStream?.("close", port);
          finishOne();
        }
      }, (error: Error) => {
        send(2 * i + 1, forwardingError(ctx, port, error));
        ctx.onStream?.("close", port);
        finishOne();
      });
    });
  }
  socket.onMessage((data) => {
    let bytes: Uint8Array;
    if (typeof data === "string") {
      if (!base64 || data.length < 1) return;
      try {
        bytes = Uint8Array.from(atob(data.slice(1)), (c) => c.charCodeAt(0));
      } catch {
        return; // invalid base64 is dropped
      }
      bytes = new Uint8Array([data.charCodeAt(0) - 48, ...bytes]);
    } else {
      if (base64) return; // binary frames are ignored in base64 mode
      bytes = data;
    }
    if (bytes.length < 2) return;
    const channel = bytes[0];
    if (channel % 2 === 1 || channel / 2 >= ports.length) return; // error channels are read-only
    const i = channel / 2;
    const payload = bytes.slice(1);
    writes[i] = writes[i].then(() => dials[i]).then(async (conn) => {
      let off = 0;
      while (off < payload.length) off += await conn.write(payload.subarray(off));
    }).catch(() => {});
  });
  socket.onClose(() => {
    for (const conn of conns) {
      try {
        conn?.close();
      } catch {
        // closed already
      }
    }
  });
}
