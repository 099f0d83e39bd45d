/**
 * TCP_NODELAY for sockets Deno hides: its TLS connections offer no `setNoDelay` (only plain TCP
 * connections do). The socket is found among this process's descriptors by the inode
 * `/proc/net/tcp` lists for its local port and state (docs/platform.md §3.7): a TLS listener's
 * (accepted sockets inherit the option from it, on Linux), or a `Deno.connectTls` connection's
 * (the only way Deno presents a client certificate). Without it a small write that follows
 * another (a reply after TLS 1.3's session tickets, a SPDY data frame after the stream replies)
 * waits for the peer's delayed ACK (Nagle, RFC 896), some 40 ms.
 */
import { type Libc, openLibc } from "./libc.ts";

const IPPROTO_TCP = 6;
const TCP_NODELAY = 1;

/** Socket states as /proc/net/tcp writes them (include/net/tcp_states.h). */
export const TcpState = { ESTABLISHED: "01", LISTEN: "0A" } as const;

/** Sets TCP_NODELAY on this process's listening TCP socket on `port`; false when not found. */
export function setListenerNoDelay(port: number): Promise<boolean> {
  return setNoDelayOn(port, TcpState.LISTEN);
}

/** Sets TCP_NODELAY on this process's connection from local `port`; false when not found. */
export function setConnectionNoDelay(localPort: number): Promise<boolean> {
  return setNoDelayOn(localPort, TcpState.ESTABLISHED);
}

async function setNoDelayOn(port: number, state: string): Promise<boolean> {
  const fds = await descriptorsOnPort(port, state);
  if (fds.length === 0) return false;
  return withLibc((libc) =>
    fds.map((fd) => libc.setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, new Int32Array([1]), 4) === 0)
      .some(Boolean)
  );
}

/** TCP_NODELAY of each of this process's TCP sockets with local `port` in `state`. */
export async function noDelayOf(
  port: number,
  state: typeof TcpState[keyof typeof TcpState],
): Promise<boolean[]> {
  const fds = await descriptorsOnPort(port, state);
  return withLibc((libc) =>
    fds.map((fd) => {
      const value = new Int32Array(1);
      const length = new Uint32Array([4]);
      return libc.getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, value, length) === 0 && value[0] !== 0;
    })
  );
}

async function descriptorsOnPort(port: number, state: string): Promise<number[]> {
  const inodes = new Set<string>();
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    const text = await Deno.readTextFile(table).catch(() => "");
    for (const line of text.split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/);
      const localPort = parseInt(fields[1]?.split(":")[1] ?? "", 16);
      if (localPort === port && fields[3] === state) inodes.add(fields[9]);
    }
  }
  const fds: number[] = [];
  if (inodes.size === 0) return fds;
  for await (const entry of Deno.readDir("/proc/self/fd")) {
    const target = await Deno.readLink(`/proc/self/fd/${entry.name}`).catch(() => "");
    const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
    if (inode !== undefined && inodes.has(inode)) fds.push(Number(entry.name));
  }
  return fds;
}

function withLibc<T>(use: (libc: Libc) => T): T {
  const libc = openLibc();
  try {
    return use(libc.symbols);
  } finally {
    libc.close();
  }
}
