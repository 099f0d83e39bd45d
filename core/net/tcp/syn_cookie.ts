/**
 * SYN cookies (RFC 4987 §3.6). Once the half-open limits are reached, the stack answers a SYN
 * with a SYN-ACK whose ISN encodes what it would otherwise have remembered, and keeps nothing:
 * a flood of spoofed SYNs costs one SYN-ACK each and opens no dial. The app's final ACK brings
 * the cookie back (ACK = ISN + 1); only if it verifies is the connection created. The design is
 * Linux's (secure_tcp_syn_cookie, net/ipv4/syncookies.c) and FreeBSD's (tcp_syncache.c): a keyed
 * hash of the 4-tuple and the app's ISN, a coarse clock, and an index into a table of MSS values.
 *
 * The ISN:
 *
 *     bits 31–4  MAC: SipHash-2-4 under the stack's secret key of the 4-tuple, the app's ISN,
 *                the time counter and the MSS index (28 bits of it)
 *     bit  3     the time counter's parity: which of the two counters still accepted issued it
 *     bits 2–0   the index of the MSS in MSS_TABLE
 *
 * Without timestamps (RFC 7323 §3, which this stack does not implement) a cookie cannot carry the
 * window-scale or SACK options: a connection opened from a cookie uses no window scaling, so its
 * window is at most 64 KiB, as on Linux with timestamps off. Only connections opened while the
 * limits are reached pay that.
 */
import { SipHash24 } from "./siphash.ts";
import { DEFAULT_MSS, MIN_MSS } from "./mss.ts";

/**
 * The MSS values a cookie can carry (3 bits): the app's MSS is rounded down to one of them. The
 * app's kernel offers its route's MTU − 40, so the table holds that for common MTUs: 576, 1280,
 * 1440 and 1480 (overlay networks), 1500, 9000 and 65535 (a TUN as large as loopback's). MIN_MSS
 * takes a smaller option without overshooting it.
 */
export const MSS_TABLE: readonly number[] = [
  MIN_MSS,
  DEFAULT_MSS,
  1240,
  1400,
  1440,
  1460,
  8960,
  65495,
];

/**
 * The time counter ticks this often, and a cookie is accepted while the counter it was issued
 * under is the current or the previous one: for 1 to 2 minutes (Linux: 60 s, MAX_SYNCOOKIE_AGE 2).
 * The app answers a SYN-ACK within a round trip; the slack covers its retransmissions of the
 * final ACK and of the data after it.
 */
export const COOKIE_PERIOD_MS = 60_000;

const MAC_SHIFT = 4;
const PARITY_BIT = 1 << 3;
const MSS_INDEX_MASK = 0b111;

/** The connection a cookie belongs to: the app's address and port, and the routed ones. */
export interface CookieTuple {
  src: number;
  srcPort: number;
  dst: number;
  dstPort: number;
}

/** Issues and verifies SYN cookies under one secret key. */
export class SynCookies {
  readonly #mac: SipHash24;
  /** The hashed message: src, dst, srcPort, dstPort, the app's ISN, the counter, the MSS index. */
  readonly #message = new Uint8Array(21);
  readonly #view = new DataView(this.#message.buffer);
  /** The time counter of the last cookie issued (−Infinity: none yet). */
  #lastIssued = -Infinity;

  /** `key`: 16 secret bytes, random per stack (only its holder can issue valid cookies). */
  constructor(key: Uint8Array) {
    this.#mac = new SipHash24(key);
  }

  /** Cookies under a fresh random key. */
  static withRandomKey(): SynCookies {
    return new SynCookies(crypto.getRandomValues(new Uint8Array(16)));
  }

  /** The ISN to answer the SYN of `tuple` with: `irs` its ISN, `mss` its MSS option if any. */
  issue(tuple: CookieTuple, irs: number, mss: number | undefined, now: number): number {
    const counter = counterAt(now);
    this.#lastIssued = counter;
    const index = mssIndex(mss ?? DEFAULT_MSS);
    return (
      (this.#macOf(tuple, irs, counter, index) << MAC_SHIFT) |
      ((counter & 1) === 1 ? PARITY_BIT : 0) |
      index
    ) >>> 0;
  }

  /**
   * The MSS `cookie` carries if this key issued it for `tuple` and `irs` under the current or
   * the previous time counter; otherwise undefined (forged, for another connection, or stale).
   */
  check(tuple: CookieTuple, irs: number, cookie: number, now: number): number | undefined {
    const current = counterAt(now);
    const parity = (cookie & PARITY_BIT) !== 0 ? 1 : 0;
    const counter = (current & 1) === parity ? current : current - 1;
    const index = cookie & MSS_INDEX_MASK;
    if ((cookie >>> MAC_SHIFT) !== this.#macOf(tuple, irs, counter, index)) return undefined;
    return MSS_TABLE[index];
  }

  /**
   * Whether a cookie issued lately may still come back. An ACK for an unknown connection is
   * checked only then, as Linux does (tcp_synq_no_recent_overflow): when no flood is going on,
   * nobody can try to guess cookies at all.
   */
  recentlyIssued(now: number): boolean {
    return this.#lastIssued >= counterAt(now) - 1;
  }

  /** The 28-bit MAC of a cookie. */
  #macOf(tuple: CookieTuple, irs: number, counter: number, index: number): number {
    const view = this.#view;
    view.setUint32(0, tuple.src);
    view.setUint32(4, tuple.dst);
    view.setUint16(8, tuple.srcPort);
    view.setUint16(10, tuple.dstPort);
    view.setUint32(12, irs);
    view.setUint32(16, counter >>> 0);
    view.setUint8(20, index);
    return this.#mac.hash(this.#message)[0] >>> MAC_SHIFT;
  }
}

/** The coarse clock a cookie is stamped with. */
function counterAt(now: number): number {
  return Math.floor(now / COOKIE_PERIOD_MS);
}

/** The largest MSS_TABLE entry not above `mss` (the first entry when all are). */
function mssIndex(mss: number): number {
  let index = MSS_TABLE.length - 1;
  while (index > 0 && MSS_TABLE[index] > mss) index--;
  return index;
}
