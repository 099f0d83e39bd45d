/**
 * Between a dialer's {@link SocketDial} and the packet loop's `connect` (docs/architecture.md,
 * "Dialed from the packet loop"): the connection as the loop takes it, and the loop's failure
 * codes back as the dial failures
 * fronts and telemetry know.
 */
import type { DialFailure, SocketDial } from "../../../mod.ts";
import { ipv4ToNumber } from "../../vip.ts";
import { socks5NoAuthConnect } from "../wire/socks5_client.ts";
import { failureOfReply } from "../../proxy/socks5.ts";
import { type LoopDial, SOCKS5_REPLY_BASE } from "../packet_loop/protocol.ts";

/** errno values the loop reports (Linux numbering, core/net/device/loop_sockets.ts). */
const ECONNREFUSED = 111;
const ETIMEDOUT = 110;
const UNREACHABLE = new Set([99, 101, 113]); // EADDRNOTAVAIL, ENETUNREACH, EHOSTUNREACH

/** The loop's form of `socket`; throws a RangeError for an address or port it cannot open. */
export function loopDialOf(socket: SocketDial): LoopDial {
  const address = ipv4ToNumber(socket.address);
  if (address === undefined || address === 0) {
    throw new RangeError(`"${socket.address}" is not an IPv4 address to connect to`);
  }
  if (!Number.isInteger(socket.port) || socket.port < 1 || socket.port > 65535) {
    throw new RangeError(`port ${socket.port} is not a TCP port`);
  }
  const target = socket.socks5Connect;
  return {
    address,
    port: socket.port,
    socks5: target && socks5NoAuthConnect(target.host, target.port),
  };
}

/** What a `connect-failed` code means for the dial of `socket`. */
export function loopDialFailure(
  code: number,
  socket: SocketDial,
): { reason: DialFailure; message: string } {
  const where = `${socket.address}:${socket.port}`;
  if (code >= SOCKS5_REPLY_BASE) {
    const reply = code - SOCKS5_REPLY_BASE;
    const target = `${socket.socks5Connect?.host}:${socket.socks5Connect?.port}`;
    return {
      reason: failureOfReply(reply),
      message: `SOCKS upstream ${where} answered ${reply} for ${target}`,
    };
  }
  if (code === ECONNREFUSED) {
    return { reason: "refused", message: `${where} refused the connection` };
  }
  if (code === ETIMEDOUT) return { reason: "timeout", message: `${where} did not answer` };
  if (UNREACHABLE.has(code)) return { reason: "unreachable", message: `${where}: errno ${code}` };
  return { reason: "error", message: `${where}: errno ${code}` };
}
