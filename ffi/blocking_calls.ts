/**
 * `connect`, `recv` and `poll` declared a second time to run on Deno's blocking-call threads, for
 * sockets that wait (a TCP connect, a reply): the calling thread stays free. errno is not readable
 * after such a call, since another thread made it (docs/platform.md §1.3). Linux and macOS declare
 * them alike except for `nfds_t`, an unsigned long on Linux and an unsigned int on macOS.
 */
export function blockingSocketCalls<Nfds extends "u32" | "u64">(nfds: Nfds) {
  return {
    connectBlocking: {
      name: "connect",
      parameters: ["i32", "buffer", "u32"],
      result: "i32",
      nonblocking: true,
    },
    recvBlocking: {
      name: "recv",
      parameters: ["i32", "buffer", "usize", "i32"],
      result: "isize",
      nonblocking: true,
    },
    pollBlocking: {
      name: "poll",
      parameters: ["buffer", nfds, "i32"],
      result: "i32",
      nonblocking: true,
    },
  } as const;
}
