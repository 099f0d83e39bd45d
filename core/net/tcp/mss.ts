/**
 * The maximum segment size this side sends (RFC 9293 §3.7.1, RFC 6691, RFC 879): the peer's MSS
 * option, bounded on both sides. An MSS of 0 from the wire would otherwise make every segment
 * empty and the send loop spin forever; a tiny one turns each byte into a 40-byte header.
 */

/** The MSS to assume when the SYN carries no MSS option (RFC 9293 §3.7.1, RFC 879). */
export const DEFAULT_MSS = 536;

/**
 * The smallest MSS honoured: Linux's TCP_MIN_MSS (88, include/net/tcp.h). A smaller option is
 * raised to it, as Linux raises it to its tcp_min_snd_mss floor.
 */
export const MIN_MSS = 88;

/**
 * The payload size of the segments sent on a connection whose SYN offered `offered` (undefined
 * when absent), when our own path allows `ceiling` (MTU − 40): never 0, never above the ceiling.
 */
export function effectiveSendMss(offered: number | undefined, ceiling: number): number {
  const limit = Math.max(1, Math.floor(ceiling) || 1); // a misconfigured MTU still yields > 0
  const wanted = offered ?? DEFAULT_MSS;
  return Math.min(limit, Math.max(MIN_MSS, wanted));
}
