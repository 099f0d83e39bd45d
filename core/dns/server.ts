/**
 * k8stun's DNS server: decodes each query, answers cluster names locally and forwards everything
 * else upstream unchanged, every query independently (a slow upstream never delays a cluster
 * answer). UDP answers that exceed the client's limit (512, or its EDNS size) are truncated
 * with TC so the client retries over TCP, which is served too. Garbage with a readable header
 * gets FORMERR; anything shorter is dropped. Used on sockets (forward mode) and from the TUN
 * (tun_route mode) through {@link DnsServer.handle}.
 */
import dnsPacket from "dns-packet";
import type { Packet } from "dns-packet";
import { Buffer } from "node:buffer";
import { GuardedListener, type ListenerLimits } from "../guarded_listener.ts";
import { logger } from "../log.ts";
import { NoTelemetry, type TelemetrySink } from "../telemetry.ts";
import type { ClusterAnswerer } from "./answer.ts";
import { errorHeader, RCODES } from "./error_header.ts";
import { listenDenoUdp, type ListenUdp } from "./udp_listener.ts";
import { readFramed, type UpstreamResolver } from "./upstream.ts";
import { goesUnanswered } from "./unanswered.ts";
import { VipRangeExhausted } from "../vip.ts";

const log = logger("dns");
const FLAG_QR = 0x8000;
const FLAG_AA = 0x0400;
const FLAG_TC = 0x0200;
const FLAG_RD = 0x0100;
const FLAG_RA = 0x0080;

/** A running listener set. */
export interface DnsListener {
  addresses: { hostname: string; port: number }[];
  close(): void;
}

/** How long an encoded cluster answer is reused; changes in the cluster also clear it at once. */
const CACHE_MS = 1000;
const CACHE_ENTRIES = 10_000;

/**
 * DNS over TCP: a first query within 2 s, 10 s idle between queries (RFC 7766 §6.2.3: seconds),
 * and caps per source (local stub resolvers all come from 127.0.0.1) and in total.
 */
export const DNS_TCP_LIMITS: ListenerLimits = {
  maxConnections: 512,
  maxPerSource: 256,
  maxHandshakesPerSource: 64,
  handshakeMs: 2_000,
  idleMs: 10_000,
};

/** The DNS server logic. */
export class DnsServer {
  /**
   * Encoded cluster answers by query (everything after the id) and transport: a repeated query
   * costs a copy and two id bytes instead of a decode, a lookup and an encode. Short-lived, so
   * plugin resolvers' changes and VIP use tracking still come through every second.
   */
  readonly #cache = new Map<string, { response: Uint8Array; expires: number }>();
  /** A full VIP range was reported (once is enough: it fails every new name alike). */
  #saidExhausted = false;

  constructor(
    readonly answerer: ClusterAnswerer,
    readonly upstream: UpstreamResolver,
    readonly telemetry: TelemetrySink = NoTelemetry,
  ) {
    answerer.view.onChange(() => this.invalidate()); // endpoint and service changes show at once
  }

  /** Forgets cached answers (the cluster changed). */
  invalidate(): void {
    this.#cache.clear();
  }

  /**
   * Answers one query. `udp` applies the UDP size limit (TC when exceeded). Returns null for a
   * message that goes unanswered (unanswered.ts: too short to carry an id, or a response).
   */
  async handle(query: Uint8Array, udp: boolean): Promise<Uint8Array | null> {
    if (goesUnanswered(query)) return null;
    const key = cacheKey(query, udp);
    const cached = this.#cache.get(key);
    if (cached && cached.expires > performance.now()) {
      const response = cached.response.slice();
      response[0] = query[0];
      response[1] = query[1];
      this.telemetry.emit({ type: "dns_query", kind: "cluster", rcode: rcodeName(response) });
      return response;
    }
    let packet: Packet;
    try {
      packet = dnsPacket.decode(Buffer.from(query.buffer, query.byteOffset, query.byteLength));
    } catch {
      return this.#error(query, "FORMERR");
    }
    // RFC 9619: a query has at most one question (and only then can its answer be checked).
    if ((packet.questions?.length ?? 0) > 1) return this.#error(query, "FORMERR");
    const question = packet.questions?.[0];
    let answer;
    try {
      answer = question ? await this.answerer.answer(question) : null;
    } catch (error) {
      // A full VIP range fails every new name alike: said once, then at debug level.
      const again = error instanceof VipRangeExhausted && this.#saidExhausted;
      if (error instanceof VipRangeExhausted) this.#saidExhausted = true;
      log[again ? "debug" : "warn"]("answering {name} failed: {error}", {
        name: question?.name,
        error: String(error),
      });
      return this.#error(query, "SERVFAIL");
    }
    if (!answer) return await this.#forward(query, !udp);
    const answers = [...answer.answers ?? [], ...await this.#chase(answer.answers, question!)];
    this.telemetry.emit({ type: "dns_query", kind: "cluster", rcode: answer.rcode });
    const opt = packet.additionals?.find((r) => r.type === "OPT") as
      | { udpPayloadSize?: number }
      | undefined;
    const limit = udp ? Math.max(512, Math.min(opt?.udpPayloadSize ?? 512, 4096)) : 65535;
    const flags = FLAG_QR | FLAG_AA | FLAG_RA | ((packet.flags ?? 0) & FLAG_RD) |
      RCODES[answer.rcode];
    const response = (answers: Packet["answers"], tc: boolean) =>
      new Uint8Array(dnsPacket.encode({
        type: "response",
        id: packet.id,
        flags: flags | (tc ? FLAG_TC : 0),
        questions: packet.questions,
        answers,
        authorities: tc ? [] : answer.authorities,
        additionals: opt ? [{ type: "OPT", name: ".", udpPayloadSize: 4096 } as never] : [],
      }));
    const full = response(answers, false);
    const reply = full.length <= limit ? full : response([], true);
    if (this.#cache.size >= CACHE_ENTRIES) this.#cache.clear();
    this.#cache.set(key, { response: reply, expires: performance.now() + CACHE_MS });
    return reply;
  }

  /**
   * An ExternalName answers with a CNAME to a name outside the cluster; like cluster DNS, add
   * that name's records from upstream, so stub resolvers (which do not chase CNAMEs) get an
   * address. Upstream trouble leaves the CNAME alone.
   */
  async #chase(
    answers: Packet["answers"],
    question: NonNullable<Packet["questions"]>[number],
  ): Promise<NonNullable<Packet["answers"]>> {
    const last = answers?.at(-1);
    if (last?.type !== "CNAME" || (question.type !== "A" && question.type !== "AAAA")) return [];
    try {
      const query = new Uint8Array(dnsPacket.encode({
        type: "query",
        id: Math.floor(Math.random() * 65536),
        flags: FLAG_RD,
        questions: [{ type: question.type, name: last.data as string }],
      }));
      const reply = dnsPacket.decode(Buffer.from(await this.upstream.forward(query)));
      return reply.answers ?? [];
    } catch {
      return [];
    }
  }

  async #forward(query: Uint8Array, overTcp: boolean): Promise<Uint8Array> {
    const started = performance.now();
    try {
      const reply = await this.upstream.forward(query, overTcp);
      this.telemetry.emit({
        type: "dns_query",
        kind: "upstream",
        rcode: rcodeName(reply),
        seconds: (performance.now() - started) / 1000,
      });
      return reply;
    } catch (error) {
      log.debug("upstream failed: {error}", { error: (error as Error).message });
      this.telemetry.emit({ type: "dns_query", kind: "upstream", rcode: "SERVFAIL" });
      return this.#error(query, "SERVFAIL");
    }
  }

  /**
   * Counts a query forwarded without this server (the packet loop forwards most names in
   * tun_route mode): the answer's `rcode`, or undefined when none came (the client got SERVFAIL).
   */
  countForwarded(rcode: number | undefined, seconds: number): void {
    this.telemetry.emit(
      rcode === undefined
        ? { type: "dns_query", kind: "upstream", rcode: "SERVFAIL" }
        : { type: "dns_query", kind: "upstream", rcode: rcodeText(rcode), seconds },
    );
  }

  /** The header-only error response (error_header.ts), counted. */
  #error(query: Uint8Array, rcode: keyof typeof RCODES): Uint8Array {
    this.telemetry.emit({
      type: "dns_query",
      kind: rcode === "FORMERR" ? "cluster" : "upstream",
      rcode,
    });
    return errorHeader(query, RCODES[rcode]);
  }

  /** Serves UDP (on the socket `listenUdp` opens) and TCP on `hostname:port`. */
  listen(hostname: string, port: number, listenUdp: ListenUdp = listenDenoUdp): DnsListener {
    const udp = listenUdp(hostname, port, (query) => this.handle(query, true));
    let tcpSocket: Deno.Listener;
    try {
      tcpSocket = Deno.listen({ transport: "tcp", hostname, port: udp.port });
    } catch (error) {
      udp.close();
      throw error;
    }
    // The first query is the handshake; afterwards a connection may idle for seconds, not
    // minutes (RFC 7766 §6.2.3), and a query trickling in byte by byte counts as idle.
    const tcp = new GuardedListener(tcpSocket, {
      name: "dns",
      limits: DNS_TCP_LIMITS,
      handle: async (guarded) => {
        while (true) {
          const query = await readFramed(guarded.conn);
          guarded.established();
          guarded.active();
          const reply = await this.handle(query, false);
          if (!reply) break;
          const framed = new Uint8Array(reply.length + 2);
          framed[0] = reply.length >> 8;
          framed[1] = reply.length & 0xff;
          framed.set(reply, 2);
          let written = 0;
          while (written < framed.length) {
            written += await guarded.conn.write(framed.subarray(written));
          }
          guarded.active();
        }
      },
    });
    return {
      addresses: [{ hostname, port: udp.port }],
      close() {
        udp.close();
        tcp.close();
      },
    };
  }
}

/** The query without its id, and the transport (which decides truncation). */
function cacheKey(query: Uint8Array, udp: boolean): string {
  let key = udp ? "u" : "t";
  for (let i = 2; i < query.length; i++) key += String.fromCharCode(query[i]);
  return key;
}

function rcodeName(reply: Uint8Array): string {
  return rcodeText(reply.length >= 4 ? reply[3] & 0x0f : 2);
}

function rcodeText(code: number): string {
  return (Object.entries(RCODES).find(([, v]) => v === code)?.[0]) ?? `RCODE${code}`;
}
