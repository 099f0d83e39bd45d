/**
 * The kubelet side of SPDY/3.1 port-forward (docs/portforward.md §1 item 5, §5), over any byte
 * pipe: the WebSocket tunnel (KEP-4006) or a direct upgrade. Streams arrive as SYN_STREAMs with
 * `streamtype` (error|data), `port` and `requestid`; each gets an empty SYN_REPLY; when both
 * streams of a request exist the pod port is dialed; a failure writes the kubelet's text on the
 * error stream and resets it; the client's FIN on the data stream half-closes towards the pod;
 * PINGs are answered.
 */
import {
  controlFrame,
  dataFrame,
  FLAG_FIN,
  FrameParser,
  payloadStreamId,
  PING,
  RST_CANCEL,
  RST_STREAM,
  rstStreamPayload,
  SYN_REPLY,
  SYN_STREAM,
  synReplyPayload,
} from "../../core/k8s/spdy/frames.ts";
import { HeaderBlockEncoder, HeaderDecompressor } from "../../core/k8s/spdy/headers.ts";
import { type ByteTransport, forwardingError, podReset, type PortForwardContext } from "./types.ts";

/**
 * What the simulated kubelet holds per direction before it stops reading, as the real one does:
 * spdystream blocks the connection's reader while a stream's consumer is behind, and the copy loop
 * from the pod blocks while the socket towards the client is full.
 */
const HIGH_WATER = 1024 * 1024;

interface Pair {
  port: number;
  /** Client bytes received and not yet written to the pod. */
  queued: number;
  error?: number;
  data?: number;
  conn?: Deno.Conn;
  /** The client reset the pair: a pod connection still being dialed is closed when it opens. */
  reset?: boolean;
  /** Settles with the pod connection, or undefined when the dial failed. */
  connected: PromiseWithResolvers<Deno.Conn | undefined>;
  writes: Promise<unknown>;
}

/** Serves one SPDY connection. */
export function serveSpdyPortForward(transport: ByteTransport, ctx: PortForwardContext): void {
  const parser = new FrameParser();
  const inflate = new HeaderDecompressor();
  const replyHeaders = new HeaderBlockEncoder();
  const pairs = new Map<string, Pair>();
  const byStream = new Map<number, Pair>();
  let chain: Promise<unknown> = Promise.resolve();
  let closed = false;
  /** Pairs whose pod is more than HIGH_WATER behind: the client's bytes wait in its socket. */
  const behind = new Set<Pair>();
  const send = (bytes: Uint8Array) => {
    if (!closed) transport.write(bytes);
  };
  /** kwok's order on failure (docs/portforward.md §5): FIN data, error text, RST the error stream. */
  const fail = (pair: Pair, error: unknown) => {
    send(dataFrame(pair.data!, FLAG_FIN, new Uint8Array(0)));
    send(dataFrame(pair.error!, 0, forwardingError(ctx, pair.port, error)));
    send(controlFrame(RST_STREAM, 0, rstStreamPayload(pair.error!, RST_CANCEL)));
  };
  const startPair = async (pair: Pair) => {
    let conn: Deno.Conn;
    try {
      conn = await ctx.dialPodPort(pair.port);
    } catch (error) {
      pair.connected.resolve(undefined);
      fail(pair, error);
      return;
    }
    pair.conn = conn;
    if (pair.reset) conn.close(); // reset while the dial ran: its reads below end at once
    pair.connected.resolve(conn);
    ctx.onStream?.("open", pair.port);
    const buffer = new Uint8Array(32 * 1024);
    try {
      while (true) {
        const n = await conn.read(buffer);
        if (n === null) break;
        send(dataFrame(pair.data!, 0, buffer.slice(0, n)));
        while (transport.bufferedAmount() > HIGH_WATER && !closed) {
          await new Promise((r) => setTimeout(r, 2));
        }
      }
      send(dataFrame(pair.data!, FLAG_FIN, new Uint8Array(0)));
      send(dataFrame(pair.error!, FLAG_FIN, new Uint8Array(0)));
    } catch (error) {
      // Reset by the pod: reported like a failed dial (closed by the client: nothing to say).
      if (podReset(error)) fail(pair, error);
    } finally {
      ctx.onStream?.("close", pair.port);
    }
  };
  const onSynStream = async (payload: Uint8Array) => {
    const streamId = payloadStreamId(payload);
    const headers = await inflate.decompress(payload.subarray(10));
    const type = headers.get("streamtype");
    const port = Number(headers.get("port"));
    const requestId = headers.get("requestid") ?? String(streamId);
    if ((type !== "error" && type !== "data") || !Number.isInteger(port) || port <= 0) {
      send(controlFrame(RST_STREAM, 0, rstStreamPayload(streamId, RST_CANCEL)));
      return;
    }
    if (ctx.stalls(port)) return; // never answered: no reply, no dial
    send(controlFrame(SYN_REPLY, 0, synReplyPayload(streamId, replyHeaders.encode([]))));
    const pair = pairs.get(requestId) ??
      { port, queued: 0, connected: Promise.withResolvers(), writes: Promise.resolve() };
    pairs.set(requestId, pair);
    pair[type] = streamId;
    byStream.set(streamId, pair);
    if (pair.error !== undefined && pair.data !== undefined) void startPair(pair);
  };
  const onDataFrame = (streamId: number, data: Uint8Array, flags: number) => {
    const pair = byStream.get(streamId);
    if (!pair || streamId !== pair.data) return; // writes to the error stream are ignored
    pair.queued += data.length;
    if (pair.queued > HIGH_WATER && !behind.has(pair)) {
      behind.add(pair);
      if (behind.size === 1) transport.pause();
    }
    pair.writes = pair.writes.then(async () => {
      // Client bytes may arrive before the pod connection exists (the kubelet buffers them).
      const conn = await pair.connected.promise;
      if (!conn) return;
      let off = 0;
      while (off < data.length) off += await conn.write(data.subarray(off));
      if (flags & FLAG_FIN) await conn.closeWrite();
    }).catch(() => {}).finally(() => {
      pair.queued -= data.length;
      if (pair.queued <= HIGH_WATER / 2 && behind.delete(pair) && behind.size === 0) {
        transport.resume();
      }
    });
  };
  transport.onData((bytes) => {
    let frames;
    try {
      frames = parser.push(bytes);
    } catch {
      transport.close();
      return;
    }
    for (const frame of frames) {
      if (frame.kind === "control") {
        if (frame.type === SYN_STREAM) {
          // A header block that does not inflate is a session error (the zlib stream is lost).
          chain = chain.then(() => onSynStream(frame.payload)).catch(() => transport.close());
        } else if (frame.type === PING) send(controlFrame(PING, 0, frame.payload));
        else if (frame.type === RST_STREAM) {
          // In order after the SYN_STREAMs (a reset may follow its SYN_STREAM in one read).
          const streamId = payloadStreamId(frame.payload);
          chain = chain.then(() => {
            const pair = byStream.get(streamId);
            if (!pair) return;
            pair.reset = true;
            try {
              pair.conn?.close();
            } catch {
              // closed already
            }
          });
        }
        continue;
      }
      // In order after the SYN_STREAMs before it (their headers inflate asynchronously).
      chain = chain.then(() => onDataFrame(frame.streamId, frame.data, frame.flags));
    }
  });
  transport.onClose(() => {
    closed = true;
    for (const pair of pairs.values()) {
      try {
        pair.conn?.close();
      } catch {
        // closed already
      }
    }
    inflate.close();
  });
}
