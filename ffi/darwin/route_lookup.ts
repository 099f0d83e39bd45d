/**
 * Which interface macOS sends an IPv4 address out of, asked once at start-up (before k8stun adds
 * routes) with an RTM_GET on a PF_ROUTE socket — what `route -n get` does, without running it.
 * The kernel queues its reply before the write returns (xnu `rtsock.c` route_output), so the
 * socket is read without waiting: a bounded number of messages, ours picked by pid and sequence
 * number (route_wire.ts), since every routing socket also sees everyone's route changes.
 */
import type { Darwin } from "./libsystem.ts";
import { decodeRouteGetReply, encodeRouteGet, type RouteInterface } from "./route_wire.ts";

const PF_ROUTE = 17;
const SOCK_RAW = 3;
const F_GETFL = 3;
const F_SETFL = 4;
const O_NONBLOCK = 0x4;
const ESRCH = 3;
/** Other processes' route messages read past before giving up on the reply. */
export const MAX_ROUTE_MESSAGES = 64;
/** Larger than any rt_msghdr and its eight addresses. */
const ROUTE_MESSAGE_BUFFER = 2048;

/**
 * Reads routing-socket messages with `read` (bytes, or ≤ 0 when none are waiting) until the reply
 * to (`seq`, `pid`) or at most {@link MAX_ROUTE_MESSAGES}; undefined when none came.
 */
export function readRouteGetReply(
  read: (into: Uint8Array) => number,
  seq: number,
  pid: number,
): RouteInterface | undefined {
  const buffer = new Uint8Array(ROUTE_MESSAGE_BUFFER);
  for (let i = 0; i < MAX_ROUTE_MESSAGES; i++) {
    const n = read(buffer);
    if (n <= 0) return undefined;
    const found = decodeRouteGetReply(buffer.subarray(0, n), seq, pid);
    if (found) return found;
  }
  return undefined;
}

/** The interface that reaches `address` (a 32-bit number), or undefined when no route does. */
export function darwinOutgoingInterface(os: Darwin, address: number): RouteInterface | undefined {
  const sock = os.sym.socket(PF_ROUTE, SOCK_RAW, 0);
  os.check(sock, "open a routing socket");
  try {
    const flags = os.fcntl(sock, F_GETFL, 0);
    os.check(flags, "read the routing socket's flags");
    os.check(os.fcntl(sock, F_SETFL, flags | O_NONBLOCK), "make the routing socket non-blocking");
    const pid = os.sym.getpid();
    const seq = 1;
    const request = encodeRouteGet(address, seq, pid);
    if (os.sym.write(sock, request, BigInt(request.length)) < 0) {
      if (os.errno() === ESRCH) return undefined; // no route at all
      os.check(-1, "look up a route");
    }
    return readRouteGetReply(
      (into) => Number(os.sym.read(sock, into, BigInt(into.length))),
      seq,
      pid,
    );
  } finally {
    os.sym.close(sock);
  }
}
