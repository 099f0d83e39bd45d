/**
 * UDP queries to one server over a few non-blocking, connected sockets, read by one poller
 * (ffi/linux/socket_poller.ts) while queries are in flight: a fixed number of descriptors and at
 * most one waiting thread however many queries are outstanding, each wake-up taking in what is
 * waiting, and each query leaving with one synchronous send. Which sockets (device-bound for
 * tun_route, plain for forward mode) is the caller's.
 */
import { SocketPoller } from "../../ffi/linux/socket_poller.ts";
import type { Libc } from "../../ffi/linux/libc.ts";
import { UdpExchange } from "../../core/dns/udp_exchange.ts";

/** A non-blocking socket connected to the server. */
export interface ConnectedDatagram {
  readonly fd: number;
  /** Sends one datagram; throws when the kernel refuses it. */
  send(datagram: Uint8Array): void;
  /** A waiting datagram's size, or -1 when none is waiting (or an ICMP error was cleared). */
  receiveNow(buffer: Uint8Array): number;
  close(): void;
}

/** Datagrams read per socket per wake-up, so one busy socket cannot starve the others. */
const READS_PER_WAKE = 64;

/** An exchange over sockets `open` connects, and the poller that reads them. */
export function polledExchange(
  open: () => ConnectedDatagram,
  poll: Pick<Libc, "pollBlocking">,
  capacity: number,
): { exchange: UdpExchange; poller: SocketPoller; close(): Promise<void> } {
  const buffer = new Uint8Array(65535);
  const poller = new SocketPoller(poll, () => exchange.inFlight > 0);
  const exchange = new UdpExchange((receive) => {
    const socket = open();
    const takeWaiting = () => {
      for (let i = 0; i < READS_PER_WAKE; i++) {
        const n = socket.receiveNow(buffer);
        if (n < 0) return; // EAGAIN, or an ICMP error (already cleared by this receive)
        receive(buffer.slice(0, n));
      }
    };
    poller.add(socket.fd, takeWaiting);
    return {
      send(datagram) {
        socket.send(datagram);
        poller.wake();
      },
      takeWaiting,
      close() {
        poller.remove(socket.fd);
        socket.close();
      },
    };
  }, { capacity });
  return {
    exchange,
    poller,
    async close() {
      await exchange.close();
      await poller.close();
    },
  };
}
