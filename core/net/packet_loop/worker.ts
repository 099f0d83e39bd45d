/**
 * The packet loop, run in a Worker (docs/platform.md §2.2): wait on the device and a wake-up fd,
 * drain the device with synchronous non-blocking reads, apply the relay's operations from the
 * shared ring, feed the stack, run its timers, write its packets synchronously, and publish the
 * turn's flow events to the other ring. The loop never yields to the Worker's event loop:
 * everything it needs arrives through shared memory, so a wake-up is one `poll` return. The
 * device's end (core/net/device/tun_device.ts PacketIo) comes from the module its spec names,
 * imported once before the loop starts: this file knows no OS. Stopping closes nothing it does
 * not own.
 *
 * Failures: an operation that throws resets its flow (RST to the application, "closed" to the
 * relay), is counted in the FAULTS word and reported once per kind; anything else that throws
 * ends the loop with "failed", and the main thread starts a new one (core/net/data_plane/data_plane.ts). Every
 * turn bumps the HEARTBEAT word, which the main thread's watchdog reads.
 */
/// <reference lib="deno.worker" />
import { NetStack } from "../stack.ts";
import type { Offload } from "../wire/virtio.ts";
import type { PacketIo, PacketIoModule } from "../device/tun_device.ts";
import { emitUdp } from "../wire/udp.ts";
import { formatIpv4 } from "../wire/ipv4.ts";
import { fragmentIpv4, MAX_UDP_PAYLOAD } from "../wire/ipv4_fragment.ts";
import { RingReader, RingWriter } from "./ring.ts";
import { LocalSources } from "./local_sources.ts";
import { SocketRelay } from "./socket_relay.ts";
import { DnsForwarder } from "./dns_forwarder.ts";
import { DatagramQuota } from "./datagram_quota.ts";
import { DNS_PORT, goesUnanswered } from "../../dns/unanswered.ts";
import {
  type FromLoop,
  type LoopEvent,
  type LoopOp,
  type LoopStart,
  type LoopTestFault,
  pushEvent,
  readOps,
  Signal,
} from "./protocol.ts";
import type { FlowEnd, FlowId, StackHost, UdpDatagram } from "../stack_types.ts";
import { FRAME_HEADROOM } from "../device/tun_device.ts";

/** A turn that moved this much is part of a bulk transfer (see the busy-poll below). */
const BULK_TURN_BYTES = 32 * 1024;
/**
 * How long after announcing a new flow the loop keeps polling while its dial runs: the relay's
 * accept usually comes back within it, and a sleeping loop would add a wake-up to every new
 * connection's handshake (the app's connect() waits for our SYN-ACK, docs/tcp.md §3.1).
 */
const DIAL_BUSY_POLL_MS = 1.5;
/**
 * A busy-poll pass that took this long means the thread was descheduled: another thread wanted
 * the CPU — on a small or loaded machine, often the relay or the app producing the very work the
 * loop waits for. The loop then sleeps instead, and does not busy-poll for
 * {@link CONTENDED_BACKOFF_MS}.
 */
const PREEMPTED_MS = 0.05;
const CONTENDED_BACKOFF_MS = 50;
/** Fault kinds reported by message; past this many, faults are only counted. */
const MAX_FAULT_KINDS = 32;
/** Device reads per turn: more than the TUN queue holds (1000 packets, docs/platform.md §3.3). */
const MAX_READS_PER_TURN = 4096;
/**
 * Events that ask nothing of the main thread soon (a forwarded DNS query's count) do not wake it:
 * they wait in the ring for its next wake-up, at most this long. Waking it costs a futex and a
 * turn of its event loop: with 50 names in flight that was 4.6 µs of the main thread's CPU per
 * forwarded name, 1.2 µs without (`deno task bench dns`), of some 35 µs the name costs k8stun.
 */
const QUIET_EVENT_DELAY_MS = 50;
/**
 * Datagrams that may wait for the main thread at once (datagram_quota.ts): some 10 ms of its work
 * at most, and far more than a DNS client keeps in flight (a browser's page: a few dozen names).
 */
const DATAGRAMS_WAITING = 256;
const NO_OFFLOAD: Offload = { kind: "none" };
let started = false;

self.onmessage = async (event: MessageEvent<LoopStart>) => {
  if (event.data.type !== "start" || started) return;
  started = true;
  let io: PacketIo | undefined;
  let ending: FromLoop = { type: "stopped" };
  try {
    const module: PacketIoModule = await import(event.data.device.module);
    io = module.openPacketIo(event.data.device, event.data.wakeFd, event.data.sockets);
    run(event.data, io);
  } catch (error) {
    ending = { type: "failed", message: error instanceof Error ? error.message : String(error) };
  } finally {
    io?.close(); // its sockets too
  }
  // Said only now: the owner may take every socket still recorded as one a terminated loop left.
  post(ending);
  self.close();
};

function post(message: FromLoop): void {
  self.postMessage(message);
}

function run(start: LoopStart, io: PacketIo): void {
  const copy = io.copy;
  const mtu = start.device.mtu;
  const offload = start.device.offload.checksum && start.device.offload.segmentation;
  const opsRing = new RingReader(start.ops, copy);
  const eventsRing = new RingWriter(start.events, copy);
  const signals = new Int32Array(start.signals);
  const reported = new Set<string>();
  /** Counts a contained failure; the first of each kind goes to the main thread's log. */
  const fault = (kind: string, error: unknown) => {
    Atomics.add(signals, Signal.FAULTS, 1);
    if (reported.has(kind) || reported.size >= MAX_FAULT_KINDS) return;
    reported.add(kind);
    post({ type: "fault", kind, message: error instanceof Error ? error.message : String(error) });
  };
  const sources = new LocalSources(start.localAddresses);
  /** Events the ring had no room for, in order, their bytes copied: published before others. */
  const backlog: LoopEvent[] = [];
  let published = 0;
  /** When the oldest event published without a wake-up was ({@link QUIET_EVENT_DELAY_MS}). */
  let quietSince = Infinity;
  /**
   * Hands an event to the main thread: straight into the ring, in the order they happen; what the
   * ring has no room for waits in the backlog. A quiet event does not wake the main thread, and
   * when the ring is full it is dropped instead of kept: it is a count, not a byte of anyone's.
   */
  const emit = (event: LoopEvent, quiet = false) => {
    if (backlog.length === 0 && pushEvent(eventsRing, event)) {
      if (!quiet) published++;
      else if (quietSince === Infinity) quietSince = performance.now();
      return;
    }
    if (quiet) return;
    // Data views the packet buffer, reused by the next read: a waiting event keeps a copy.
    backlog.push(event.ev === "data" ? { ...event, data: event.data.slice() } : event);
    Atomics.store(signals, Signal.EVENTS_BACKLOG, 1);
  };
  const datagramQuota = new DatagramQuota(DATAGRAMS_WAITING);
  /**
   * Hands a datagram to the main thread, or drops and counts it: past the quota, and when the ring
   * is full, since a datagram never waits in the backlog (datagram_quota.ts). It may pass events
   * waiting there: UDP promises no order against the connections' events, and a lookup should
   * not wait behind a bulk upload's bytes.
   */
  const emitDatagram = (datagram: UdpDatagram) => {
    const admitted = datagramQuota.admits(eventsRing.consumed) &&
      pushEvent(eventsRing, { ev: "udp", datagram });
    if (!admitted) {
      Atomics.add(signals, Signal.DATAGRAM_DROPS, 1);
      return;
    }
    datagramQuota.published(eventsRing.written);
    published++;
  };
  /** Bytes the relay sent that the stack could not take yet, per flow (backpressure). */
  const pending = new Map<FlowId, Uint8Array[]>();
  const finishAfter = new Set<FlowId>();
  /** Flows announced without a SYN-ACK whose dial has not answered yet (accept or refuse). */
  const dialing = new Set<FlowId>();
  let lastOpening = -Infinity;
  const mask = start.network.prefix === 0 ? 0 : (0xffffffff << (32 - start.network.prefix)) >>> 0;
  const extra = new Set<number>();
  const host: StackHost = {
    transmit(packet, offload) {
      io.transmit(packet, offload);
    },
    flowOpening(flow, answered) {
      // The app waits for this dial only when it has no SYN-ACK yet (see waitForWork).
      if (!answered) {
        dialing.add(flow.id);
        lastOpening = performance.now();
      }
      emit({ ev: "open", flow });
    },
    flowData(id, data) {
      if (relay?.has(id)) return relay.data(id, data);
      // Segment by segment: the main thread writes a flow's consecutive records as one.
      emit({ ev: "data", id, data });
    },
    flowEof(id) {
      if (relay?.has(id)) return relay.appEnded(id);
      emit({ ev: "eof", id });
    },
    flowWritable(id) {
      if (relay?.has(id)) return relay.writable(id, performance.now());
      drainPending(id);
    },
    flowClosed(id, why) {
      relay?.closed(id); // its last byte counts go before the "closed"
      dialing.delete(id);
      pending.delete(id);
      finishAfter.delete(id);
      emit({ ev: "closed", id, why });
    },
    udp(datagram) {
      // What k8stun's DNS server would drop unanswered is dropped here, for no work of the main
      // thread's; a plain query for a name that is not the cluster's goes upstream from here
      // (dns_forwarder.ts).
      if (datagram.dstPort === DNS_PORT && goesUnanswered(datagram.payload)) return;
      if (dns?.take(datagram, performance.now())) return;
      emitDatagram(datagram);
    },
  };
  const stack = new NetStack(host, {
    mtu,
    isRouted: (address) => ((address & mask) >>> 0) === start.network.base || extra.has(address),
    receiveBuffer: start.receiveBuffer,
    sendBuffer: start.sendBuffer,
    idleTimeoutMs: start.idleTimeoutMs,
    acceptingMemoryMs: start.acceptingMemoryMs,
    udpPorts: new Set(start.udpPorts),
    offload,
    copy,
  });
  /** Flows dialed from this loop, on the OS module's sockets (none where it offers none). */
  const relay = io.sockets
    ? new SocketRelay(
      io.sockets,
      stack,
      emit,
      (id, byPeer) => resetFlow(id, performance.now(), byPeer ? "reset" : "aborted"),
      fault,
    )
    : undefined;
  /** DNS forwarded from this loop, once the main thread configures it (on the same sockets). */
  const dns = io.sockets
    ? new DnsForwarder(
      io.sockets,
      (datagram) => sendUdp(datagram),
      (rcode, micros) => emit({ ev: "dns-forwarded", rcode, micros }, true),
      fault,
    )
    : undefined;
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
    if (sent > 0) emit({ ev: "sent", id, n: sent });
    if (queue.length === 0) {
      pending.delete(id);
      if (finishAfter.delete(id)) stack.finish(id, performance.now());
    }
  };
  // UDP goes out here rather than through the stack's one-MTU buffer: a datagram longer than the
  // MTU (a DNS answer up to the client's EDNS size) leaves as IPv4 fragments (ipv4_fragment.ts).
  const datagramOut = new Uint8Array(FRAME_HEADROOM + 65535).subarray(FRAME_HEADROOM);
  const fragmentOut = new Uint8Array(FRAME_HEADROOM + mtu).subarray(FRAME_HEADROOM);
  let datagramId = 0;
  const sendUdp = (datagram: UdpDatagram) => {
    if (datagram.payload.length > MAX_UDP_PAYLOAD) {
      throw new RangeError(`a UDP datagram of ${datagram.payload.length} bytes does not fit IPv4`);
    }
    datagramId = (datagramId + 1) & 0xffff;
    const length = emitUdp(
      datagramOut,
      datagram.srcAddress,
      datagram.dstAddress,
      datagram.srcPort,
      datagram.dstPort,
      datagram.payload,
      datagramId,
    );
    fragmentIpv4(
      datagramOut.subarray(0, length),
      mtu,
      fragmentOut,
      (packet) => host.transmit(packet, NO_OFFLOAD),
    );
  };
  /**
   * Resets a flow an operation failed on (or whose dialed socket the far end reset): RST to the
   * application, "closed" to the relay.
   */
  const resetFlow = (id: FlowId, now: number, why: FlowEnd = "aborted") => {
    relay?.forget(id);
    dialing.delete(id);
    pending.delete(id);
    finishAfter.delete(id);
    try {
      stack.abort(id, now);
    } catch (error) {
      fault("flow reset", error);
    }
    emit({ ev: "closed", id, why });
  };
  /** Applies one operation; one that throws costs its flow only. */
  const applyContained = (op: LoopOp, now: number) => {
    try {
      apply(op, now);
    } catch (error) {
      fault(`${op.op} operation`, error);
      if ("id" in op) resetFlow(op.id, now);
    }
  };
  const apply = (op: LoopOp, now: number) => {
    switch (op.op) {
      case "accept":
        dialing.delete(op.id);
        return stack.accept(op.id, now);
      case "refuse":
        dialing.delete(op.id);
        return stack.refuse(op.id, now);
      case "send": {
        turnBytes += op.data.length;
        // The stack copies what it takes; what it cannot take yet is kept here, in order.
        const queue = pending.get(op.id);
        if (queue) return queue.push(opsRing.keep(op.data));
        const n = stack.send(op.id, op.data, now);
        if (n > 0) emit({ ev: "sent", id: op.id, n });
        if (n < op.data.length) pending.set(op.id, [opsRing.keep(op.data.subarray(n))]);
        return;
      }
      case "consumed":
        return stack.consumed(op.id, op.n, now);
      case "finish":
        // FIN goes after the bytes still waiting for send-buffer room.
        if (pending.has(op.id)) finishAfter.add(op.id);
        else stack.finish(op.id, now);
        return;
      case "abort":
        relay?.forget(op.id);
        dialing.delete(op.id);
        pending.delete(op.id);
        return stack.abort(op.id, now);
      case "connect":
        if (!relay) {
          throw new Error("this loop dials nothing itself (its OS module has no sockets)");
        }
        return relay.connect(op.id, op.dial, now);
      case "udp":
        return sendUdp(op.datagram);
      case "route":
        if (op.add) extra.add(op.address);
        else extra.delete(op.address);
        return;
      case "local-addresses":
        return sources.replace(op.addresses);
      case "dns-forwarding":
        if (!dns) {
          throw new Error("this loop forwards no DNS itself (its OS module has no sockets)");
        }
        return dns.configure(op.config, now);
    }
  };
  /** Retries the backlog, then tells the main thread what this turn published. */
  const publish = () => {
    while (backlog.length > 0 && pushEvent(eventsRing, backlog[0])) {
      backlog.shift();
      published++;
    }
    // The flag was raised before this retry: a main thread that drained in between sees it.
    if (backlog.length === 0) Atomics.store(signals, Signal.EVENTS_BACKLOG, 0);
    // One wake-up drains every event in the ring, the quiet ones too.
    const quietDue = quietSince !== Infinity &&
      performance.now() - quietSince >= QUIET_EVENT_DELAY_MS;
    if (published > 0 || quietDue) {
      published = 0;
      quietSince = Infinity;
      wakeMain();
    }
  };
  /** Bumps the word the main thread waits on (Atomics.waitAsync in loop_link.ts). */
  const wakeMain = () => {
    Atomics.add(signals, Signal.EVENTS, 1);
    Atomics.notify(signals, Signal.EVENTS);
  };

  /**
   * Waits until the TUN or the relay has work, or `deadline`. Right after activity it polls
   * without sleeping for `busyPollMs` (like the kernel's SO_BUSY_POLL): the answer to what it
   * just published usually comes within that, and a sleeping thread takes tens of microseconds
   * to wake (much more on a virtual CPU that halted). While a dial runs it keeps polling a
   * little longer, for the accept. An idle tunnel sleeps at once, and so does a loop that competes
   * for the CPU ({@link PREEMPTED_MS}).
   */
  const waitForWork = (lastActivity: number, deadline: number) => {
    const dialSpin = dialing.size > 0 && start.busyPollMs > 0 ? lastOpening + DIAL_BUSY_POLL_MS : 0;
    const spinUntil = Math.min(Math.max(lastActivity + start.busyPollMs, dialSpin), deadline);
    let previous = performance.now();
    while (previous < spinUntil && previous >= contendedUntil) {
      if (opsRing.pending || io.wait(0)) return;
      const now = performance.now();
      if (now - previous > PREEMPTED_MS) contendedUntil = now + CONTENDED_BACKOFF_MS;
      previous = now;
    }
    // Sleep, announced first: the main thread signals the wake-up only to a sleeping loop, and
    // checking the ring after the announcement closes the race with an operation just pushed.
    Atomics.store(signals, Signal.SLEEPING, 1);
    if (!opsRing.pending) {
      io.wait(Math.max(0, Math.min(Math.ceil(deadline - performance.now()), 1000)));
    }
    Atomics.store(signals, Signal.SLEEPING, 0);
  };
  let lastActivity = -Infinity;
  /** Until then the loop does not busy-poll: it was descheduled while it did. */
  let contendedUntil = -Infinity;
  let turnBytes = 0;
  const testFaultAt = start.testFault ? performance.now() + start.testFault.afterMs : Infinity;
  post({ type: "ready", sockets: relay !== undefined });
  while (Atomics.load(signals, Signal.STOP) === 0) {
    Atomics.add(signals, Signal.HEARTBEAT, 1);
    const now = performance.now();
    if (now >= testFaultAt) injectTestFault(start.testFault!, signals);
    const deadline = Math.min(
      stack.poll(now) ?? now + 1000,
      dns?.nextDeadline() ?? Infinity,
      quietSince + QUIET_EVENT_DELAY_MS,
    );
    if (!opsRing.pending) waitForWork(lastActivity, deadline);
    const t = performance.now();
    turnBytes = 0;
    let work = readOps(opsRing, (op) => applyContained(op, t));
    // The main thread holds operations that did not fit: tell it there is room now.
    if (Atomics.exchange(signals, Signal.OPS_BACKLOG, 0) === 1) wakeMain();
    // Drain the device: read until it is empty.
    turnBytes += io.receive(MAX_READS_PER_TURN, (ip, checksumTrusted) => {
      work++;
      if (!sources.admits(ip)) {
        Atomics.add(signals, Signal.FOREIGN_DROPS, 1);
        if (!reported.has("foreign")) {
          reported.add("foreign");
          const source = formatIpv4(LocalSources.sourceOf(ip));
          post({ type: "fault", kind: "foreign", message: source });
        }
        return;
      }
      stack.input(ip, t, checksumTrusted);
    });
    if (relay) {
      const moved = relay.flush(t) +
        relay.service(performance.now(), (fd, at) => dns?.receive(fd, at) ?? 0);
      dns?.expire(performance.now());
      turnBytes += moved;
      if (moved > 0) work++;
    }
    stack.poll(performance.now());
    publish();
    // Busy-poll after request-sized turns only: in a bulk transfer the next batch is worth a
    // sleep, and the spinning would take a core from the threads producing it.
    if (work > 0) lastActivity = turnBytes < BULK_TURN_BYTES ? performance.now() : -Infinity;
  }
  relay?.closeAll();
  dns?.closeAll();
}

/** The test hook of {@link LoopStart.testFault}. */
function injectTestFault(fault: LoopTestFault, signals: Int32Array): void {
  if (fault.kind === "throw") throw new Error("test fault injected into the packet loop");
  while (fault.kind === "hang" || Atomics.load(signals, Signal.STOP) === 0) {
    // spinning: no turn, no heartbeat
  }
}
