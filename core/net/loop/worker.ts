/**
 * The packet loop, run in a Worker (platform-ffi.md §3): `poll()` on the TUN fd and a wake-up
 * eventfd, drain the TUN with synchronous non-blocking reads, feed the stack, run its timers,
 * write its packets synchronously, and post the batch of flow events. Blocking in `poll` only
 * blocks this Worker; the main thread wakes it by writing the eventfd, and then the loop yields
 * once to its event loop so queued operations arrive. Stopping closes nothing it does not own.
 */
/// <reference lib="deno.worker" />
import { Errno, errno, openLibc } from "../../../ffi/linux/libc.ts";
import { NetStack } from "../stack.ts";
import { checksumTrusted, VNET_HEADER_LENGTH, writeVnetHeader } from "../wire/virtio.ts";
import type { FlowId, StackHost } from "../stack_types.ts";
import type { FromLoop, LoopEvent, LoopOp, LoopStart, ToLoop } from "./protocol.ts";

const POLLIN = 0x1;
const { symbols: libc } = openLibc();
let ops: LoopOp[] = [];
/** Batches received from the main thread; the eventfd counts the batches it sent. */
let batchesReceived = 0;
let stopping = false;
let started: LoopStart | undefined;

self.onmessage = (event: MessageEvent<ToLoop>) => {
  const msg = event.data;
  if (msg.type === "start" && !started) {
    started = msg;
    run(msg).catch((error) => {
      post({ type: "failed", message: error instanceof Error ? error.message : String(error) });
    });
  } else if (msg.type === "ops") {
    batchesReceived++;
    for (const op of msg.ops) ops.push(op);
  } else if (msg.type === "stop") {
    batchesReceived++; // the main thread counts it on the eventfd like a batch
    stopping = true;
  }
};

function post(message: FromLoop, transfer: Transferable[] = []): void {
  self.postMessage(message, transfer);
}

/** Lets queued messages from the main thread run (a macrotask turn). */
function yieldTurn(): Promise<void> {
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => {
      channel.port1.close();
      resolve();
    };
    channel.port2.postMessage(null);
  });
}

async function run(start: LoopStart): Promise<void> {
  const events: LoopEvent[] = [];
  const dataThisTurn = new Map<FlowId, { event: { data: Uint8Array }; chunks: Uint8Array[] }>();
  const transfers: ArrayBuffer[] = [];
  /** Bytes the relay sent that the stack could not take yet, per flow (backpressure). */
  const pending = new Map<FlowId, Uint8Array[]>();
  const finishAfter = new Set<FlowId>();
  const mask = start.network.prefix === 0 ? 0 : (0xffffffff << (32 - start.network.prefix)) >>> 0;
  const extra = new Set<number>();
  const host: StackHost = {
    transmit(packet, offload) {
      // A full TUN queue (EAGAIN/ENOBUFS) is a loss the stack's timers repair (T26).
      if (!start.vnetHeader) {
        libc.write(start.tunFd, packet, BigInt(packet.length));
        return;
      }
      // The stack leaves headroom before each packet: the header goes there, one write, no copy.
      const frame = new Uint8Array(
        packet.buffer,
        packet.byteOffset - VNET_HEADER_LENGTH,
        packet.length + VNET_HEADER_LENGTH,
      );
      writeVnetHeader(frame, offload);
      libc.write(start.tunFd, frame, BigInt(frame.length));
    },
    flowOpening(flow) {
      events.push({ ev: "open", flow });
    },
    flowData(id, data) {
      // Coalesce a flow's segments of one loop iteration into one message and one relay write.
      const pending = dataThisTurn.get(id);
      if (pending) pending.chunks.push(data);
      else {
        const event = { ev: "data" as const, id, data };
        events.push(event);
        dataThisTurn.set(id, { event, chunks: [data] });
      }
    },
    flowEof(id) {
      events.push({ ev: "eof", id });
    },
    flowWritable(id) {
      drainPending(id);
    },
    flowClosed(id, why) {
      pending.delete(id);
      finishAfter.delete(id);
      events.push({ ev: "closed", id, why });
    },
    udp(datagram) {
      events.push({ ev: "udp", datagram });
      transfers.push(datagram.payload.buffer as ArrayBuffer);
    },
  };
  const stack = new NetStack(host, {
    mtu: start.mtu,
    isRouted: (address) => ((address & mask) >>> 0) === start.network.base || extra.has(address),
    receiveBuffer: start.receiveBuffer,
    sendBuffer: start.sendBuffer,
    idleTimeoutMs: start.idleTimeoutMs,
    offload: start.vnetHeader,
  });
  const drainPending = (id: FlowId) => {
    const queue = pending.get(id);
    if (!queue) return;
    let sent = 0;
    while (queue.length > 0) {
      const chunk = queue[0];
      const n = stack.send(id, chunk, performance.now());
      sent += n;
      if (n < chunk.length) {
        queue[0] = chunk.subarray(n);
        break;
      }
      queue.shift();
    }
    if (sent > 0) events.push({ ev: "sent", id, n: sent });
    if (queue.length === 0) {
      pending.delete(id);
      if (finishAfter.delete(id)) stack.finish(id, performance.now());
    }
  };
  const apply = (op: LoopOp, now: number) => {
    switch (op.op) {
      case "accept":
        return stack.accept(op.id, now);
      case "refuse":
        return stack.refuse(op.id, now);
      case "send": {
        const queue = pending.get(op.id);
        if (queue) queue.push(op.data);
        else pending.set(op.id, [op.data]);
        return drainPending(op.id);
      }
      case "consumed":
        return stack.consumed(op.id, op.n, now);
      case "finish":
        // FIN goes after the bytes still waiting for send-buffer room.
        if (pending.has(op.id)) finishAfter.add(op.id);
        else stack.finish(op.id, now);
        return;
      case "abort":
        pending.delete(op.id);
        return stack.abort(op.id, now);
      case "udp":
        return stack.sendUdp(op.datagram, now);
      case "route":
        if (op.add) extra.add(op.address);
        else extra.delete(op.address);
        return;
    }
  };

  const pfds = new Uint8Array(16);
  const view = new DataView(pfds.buffer);
  view.setInt32(0, start.tunFd, true);
  view.setInt16(4, POLLIN, true);
  view.setInt32(8, start.wakeFd, true);
  view.setInt16(12, POLLIN, true);
  // With offload a read is a virtio header and a super-packet of up to 64 KiB.
  const headerLength = start.vnetHeader ? VNET_HEADER_LENGTH : 0;
  const packet = new Uint8Array(headerLength + (start.vnetHeader ? 65535 : start.mtu + 64));
  const wakeBuffer = new Uint8Array(8);
  let batchesExpected = 0;
  let lastStats = 0;
  post({ type: "events", events: [] });
  while (!stopping) {
    const now = performance.now();
    const deadline = stack.poll(now);
    const timeout = ops.length > 0
      ? 0
      : deadline === undefined
      ? 1000
      : Math.max(0, Math.ceil(deadline - now));
    view.setInt16(6, 0, true);
    view.setInt16(14, 0, true);
    const ready = libc.poll(pfds, 2n, Math.min(timeout, 1000));
    if (ready < 0 && errno(libc) !== Errno.EINTR) {
      throw new Error(`poll failed: errno ${errno(libc)}`);
    }
    if (view.getInt16(14, true) & POLLIN) {
      // The eventfd counts the batches posted since the last read: yield until all arrived,
      // or an operation could sit in the message queue while this thread blocks in poll().
      if (libc.read(start.wakeFd, wakeBuffer, 8n) === 8n) {
        batchesExpected += Number(new DataView(wakeBuffer.buffer).getBigUint64(0, true));
      }
      for (let i = 0; batchesReceived < batchesExpected && i < 1000; i++) await yieldTurn();
    }
    if (stopping) break;
    const t = performance.now();
    if (ops.length > 0) {
      const batch = ops;
      ops = [];
      for (const op of batch) apply(op, t);
    }
    // Drain the TUN (T26: its queue holds 500 packets; read until EAGAIN).
    for (let i = 0; i < 4096; i++) {
      const n = Number(libc.read(start.tunFd, packet, BigInt(packet.length)));
      if (n <= headerLength) break;
      stack.input(
        packet.subarray(headerLength, n),
        t,
        start.vnetHeader && checksumTrusted(packet),
      );
    }
    stack.poll(performance.now());
    for (const { event, chunks } of dataThisTurn.values()) {
      if (chunks.length > 1) {
        const merged = new Uint8Array(chunks.reduce((sum, c) => sum + c.length, 0));
        let offset = 0;
        for (const chunk of chunks) {
          merged.set(chunk, offset);
          offset += chunk.length;
        }
        event.data = merged;
      }
      transfers.push(event.data.buffer as ArrayBuffer);
    }
    dataThisTurn.clear();
    if (events.length > 0) {
      post({ type: "events", events: events.splice(0) }, transfers.splice(0));
    }
    if (t - lastStats > 1000) {
      lastStats = t;
      post({ type: "stats", ...stack.stats });
    }
  }
  post({ type: "stopped" });
  self.close();
}
