/**
 * DNS the packet loop forwards itself (docs/architecture.md, "A DNS query"). In `tun_route` mode
 * every name the laptop looks up arrives in the TUN; most are not the cluster's, and a trip
 * through the main thread and back would add two thread hand-offs to each. So a query for a name
 * no claim covers (core/dns/claimed_names.ts) goes from here to the system's resolvers on the
 * loop's own sockets — UDP, bound to the interface that reached each resolver before it was
 * routed into the TUN, a few per resolver — and the answer goes from here to the client. Anything
 * else (a name that may be the cluster's, PTR, a message that is not a plain query) is the main
 * thread's, as before.
 *
 * The rules are the main thread's forwarding's (core/dns/upstream.ts, udp_exchange.ts): each query
 * leaves with a random id of ours on a random socket, and only a reply on that socket, with that
 * id and the query's question, answers it (RFC 5452 §9.1); the resolvers are tried in turn, a new
 * try every `timeoutMs`, `attempts` rounds, the earlier tries still waiting, the first answer
 * winning; at most `maxInFlight` queries wait, the oldest giving way. A query that gets no answer
 * gets SERVFAIL. Deadlines run on the loop's clock: the loop asks {@link nextDeadline} before it
 * sleeps.
 */
import { type LoopSockets, SocketError } from "../device/loop_sockets.ts";
import { ClaimedNames, type NameClaims } from "../../dns/claimed_names.ts";
import { cryptoRandomId, InflightQueries, questionKey } from "../../dns/inflight.ts";
import { UPSTREAM_SOCKETS } from "../../dns/udp_exchange.ts";
import { errorHeader, RCODES } from "../../dns/error_header.ts";
import type { UdpDatagram } from "../stack_types.ts";

/** What the loop needs to forward names itself. Plain data: it crosses the ring as JSON. */
export interface DnsForwarding {
  /** The resolvers in the order they are tried: IPv4 (host order), port, and their device. */
  servers: { address: number; port: number; device: string }[];
  /** How long one try waits before the next starts (resolv.conf `timeout:`). */
  timeoutMs: number;
  /** Rounds over the resolvers (resolv.conf `attempts:`). */
  attempts: number;
  /** Queries waiting at once; past it the oldest gives way. */
  maxInFlight: number;
  claims: NameClaims;
}

/** The rcode reported for a query k8stun answered SERVFAIL itself (no resolver answered). */
export const NO_ANSWER = 0xffff;
/**
 * Queries longer than this are the main thread's: a query is a header and one question (an EDNS
 * option or two at most), and each one waiting here keeps a copy for its retries.
 */
export const MAX_FORWARDED_QUERY = 4096;
/** Datagrams read per socket per turn, so one busy socket cannot starve the others. */
const READS_PER_TURN = 64;
const TYPE_PTR = 12;

/** A query waiting for its answer. */
interface Waiting {
  /**
   * The client's datagram: the answer goes back from where it was sent. Its payload is our copy,
   * which each try sends with its own id written over the client's ({@link clientId}).
   */
  client: UdpDatagram;
  /** The id the client gave its query, which its answer carries back. */
  clientId: number;
  /** Its question ({@link questionKey}), read once for all its tries. */
  question: string;
  started: number;
  /** Tries started so far (sent or not). */
  tries: number;
  /** Our ids of its tries still waiting. */
  ids: number[];
  done: boolean;
}

/** A try's deadline: when it passes and no later try started, the next one starts. */
interface TryDeadline {
  at: number;
  query: Waiting;
  tries: number;
}

export class DnsForwarder {
  #config?: DnsForwarding;
  #claims?: ClaimedNames;
  /** Each resolver's sockets by index (undefined until first used). */
  #sockets: (number | undefined)[][] = [];
  /** Socket → its key in {@link #inflight} (resolver × sockets + index). */
  readonly #keyOf = new Map<number, number>();
  #inflight: InflightQueries<Waiting>;
  /** Queries waiting, oldest first (a Set keeps insertion order). */
  readonly #waiting = new Set<Waiting>();
  /** Every deadline is `timeoutMs` after it was set: a queue in firing order. */
  #deadlines: TryDeadline[] = [];
  #head = 0;
  readonly #buffer = new Uint8Array(65535);

  /**
   * @param reply sends a datagram into the TUN (the answer to a client).
   * @param answered reports a query's end: the answer's rcode (or {@link NO_ANSWER}) and how long
   *   it took (µs).
   * @param fault reports a failure it contained (a socket the system would not open).
   */
  constructor(
    readonly sockets: LoopSockets,
    readonly reply: (datagram: UdpDatagram) => void,
    readonly answered: (rcode: number, micros: number) => void,
    readonly fault: (kind: string, error: unknown) => void = () => {},
    readonly randomId: () => number = cryptoRandomId(),
  ) {
    this.#inflight = new InflightQueries(1, randomId);
  }

  /** Queries waiting for an answer. */
  get waiting(): number {
    return this.#waiting.size;
  }

  /** Datagrams the sockets received that answered no query (late, stale or forged). */
  get dropped(): number {
    return this.#inflight.dropped;
  }

  /**
   * Starts, changes or (null) stops forwarding. New claims apply at once; new resolvers, devices
   * or limits get new sockets, and the queries waiting are sent again through them (a dock or a
   * cable changed the way to the resolver: the old sockets' answers may never come).
   */
  configure(config: DnsForwarding | null, now: number): void {
    const previous = this.#config;
    this.#config = config ?? undefined;
    this.#claims = config ? new ClaimedNames(config.claims) : undefined;
    if (config && previous && sameUpstreams(config, previous)) return;
    const waiting = [...this.#waiting];
    this.#closeSockets();
    this.#waiting.clear();
    this.#deadlines = [];
    this.#head = 0;
    if (!config) return; // the main thread answers from now on; these clients will retry
    const capacity = config.maxInFlight * config.attempts * config.servers.length;
    this.#inflight = new InflightQueries(Math.min(capacity, 32768), this.randomId);
    this.#sockets = config.servers.map(() => []);
    for (const query of waiting) {
      Object.assign(query, { started: now, tries: 0, ids: [] });
      this.#waiting.add(query);
      this.#nextTry(query, now);
    }
  }

  /**
   * Forwards `datagram` (a UDP datagram to port 53 in the TUN) when it is a plain query for a
   * name no claim covers: true when taken (the datagram is then the forwarder's: its payload carries
   * each try's id), false when it is the main thread's.
   */
  take(datagram: UdpDatagram, now: number): boolean {
    const config = this.#config;
    if (!config || config.servers.length === 0) return false;
    const query = datagram.payload;
    if (query.length < 12 || query.length > MAX_FORWARDED_QUERY) return false;
    // A query (QR 0), opcode QUERY, one question (RFC 1035 §4.1.1; RFC 9619).
    if ((query[2] & 0xf8) !== 0 || query[4] !== 0 || query[5] !== 1) return false;
    const question = questionKey(query);
    if (question === undefined) return false;
    const slash = question.lastIndexOf("/");
    const type = parseInt(question.slice(slash + 1), 16) >>> 16;
    if (type === TYPE_PTR || this.#claims!.mayClaim(question.slice(0, slash))) return false;
    if (this.#waiting.size >= config.maxInFlight) {
      // Like the main thread's forwarding: the oldest is the likeliest never to be answered.
      const [oldest] = this.#waiting;
      this.#finish(oldest, NO_ANSWER, now);
    }
    const waiting: Waiting = {
      client: datagram, // its payload is ours (StackHost.udp)
      clientId: (query[0] << 8) | query[1],
      question,
      started: now,
      tries: 0,
      ids: [],
      done: false,
    };
    this.#waiting.add(waiting);
    this.#nextTry(waiting, now);
    return true;
  }

  /** Whether `fd` is one of the forwarding sockets. */
  owns(fd: number): boolean {
    return this.#keyOf.has(fd);
  }

  /** Reads what waits in socket `fd` and answers the queries it answers; returns the bytes. */
  receive(fd: number, now: number): number {
    const key = this.#keyOf.get(fd);
    if (key === undefined) return 0;
    let bytes = 0;
    for (let i = 0; i < READS_PER_TURN; i++) {
      const n = this.sockets.read(fd, this.#buffer);
      // A refused earlier datagram (ICMP) is reported once and cleared: read on.
      if (n === SocketError.CONNECTION_REFUSED) continue;
      if (n < 0) break;
      bytes += n;
      const answer = this.#buffer.subarray(0, n);
      const query = this.#inflight.match(key, answer);
      if (query) this.#finish(query, answer[3] & 0x0f, now, answer);
    }
    return bytes;
  }

  /** When the next try must start or a query give up; undefined when none waits. */
  nextDeadline(): number | undefined {
    while (this.#head < this.#deadlines.length) {
      const next = this.#deadlines[this.#head];
      if (isCurrent(next)) return next.at;
      this.#head++; // answered, or a later try has its own deadline
    }
    return undefined;
  }

  /** Starts the tries that are due and fails the queries whose last try ran out. */
  expire(now: number): void {
    const config = this.#config;
    if (!config) return;
    const schedule = config.servers.length * config.attempts;
    while (this.#head < this.#deadlines.length && this.#deadlines[this.#head].at <= now) {
      const { query, tries } = this.#deadlines[this.#head++];
      if (query.done || tries !== query.tries) continue;
      if (query.tries < schedule) this.#nextTry(query, now);
      else this.#finish(query, NO_ANSWER, now);
    }
    // Every query waiting has one current deadline; the rest belong to queries answered or given
    // way, which a flood makes by the thousand: dropped once they outnumber the current ones.
    const pending = this.#deadlines.length - this.#head;
    if (pending > 1024 && pending > 2 * this.#waiting.size) {
      this.#deadlines = this.#deadlines.slice(this.#head).filter(isCurrent);
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > this.#deadlines.length) {
      this.#deadlines = this.#deadlines.slice(this.#head);
      this.#head = 0;
    }
  }

  /** Deadlines kept (current or not), for tests of the queue's bound. */
  get deadlinesKept(): number {
    return this.#deadlines.length - this.#head;
  }

  /** Closes every socket (the loop ends). */
  closeAll(): void {
    this.#closeSockets();
  }

  /**
   * Sends the query's next try (to the next resolver in turn); one that cannot be sent counts as
   * tried. With no try left to send, the tries still waiting get one more timeout.
   */
  #nextTry(query: Waiting, now: number): void {
    const { servers, attempts, timeoutMs } = this.#config!;
    while (query.tries < servers.length * attempts) {
      const server = query.tries % servers.length;
      query.tries++;
      const index = this.randomId() % UPSTREAM_SOCKETS;
      const fd = this.#socket(server, index);
      if (fd === undefined) continue;
      const socket = server * UPSTREAM_SOCKETS + index;
      const id = this.#inflight.add(query.client.payload, socket, query, query.question);
      if (id === undefined) break; // every id taken: cannot be sent at all
      // The kernel copies the datagram as it is sent: the copy can take the next try's id.
      const datagram = query.client.payload;
      datagram[0] = id >> 8;
      datagram[1] = id & 0xff;
      if (this.sockets.write(fd, datagram) !== datagram.length) {
        this.#inflight.delete(id);
        continue;
      }
      query.ids.push(id);
      this.#deadlines.push({ at: now + timeoutMs, query, tries: query.tries });
      return;
    }
    if (query.ids.length === 0) return this.#finish(query, NO_ANSWER, now);
    this.#deadlines.push({ at: now + timeoutMs, query, tries: query.tries });
  }

  /** Answers the client: the resolver's `answer`, or SERVFAIL; its tries stop waiting. */
  #finish(query: Waiting, rcode: number, now: number, answer?: Uint8Array): void {
    query.done = true;
    this.#waiting.delete(query);
    for (const id of query.ids) this.#inflight.delete(id);
    const { client } = query;
    const payload = answer ?? errorHeader(client.payload, RCODES.SERVFAIL);
    payload[0] = query.clientId >> 8;
    payload[1] = query.clientId & 0xff;
    this.reply({
      srcAddress: client.dstAddress,
      srcPort: client.dstPort,
      dstAddress: client.srcAddress,
      dstPort: client.srcPort,
      payload,
    });
    this.answered(rcode, Math.round((now - query.started) * 1000));
  }

  /** Socket `index` of resolver `server`, opened on first use; undefined when refused. */
  #socket(server: number, index: number): number | undefined {
    const open = this.#sockets[server];
    if (open[index] !== undefined) return open[index];
    const { address, port, device } = this.#config!.servers[server];
    try {
      const fd = this.sockets.datagram(device, address, port);
      this.sockets.watch(fd, true, false);
      this.#keyOf.set(fd, server * UPSTREAM_SOCKETS + index);
      open[index] = fd;
      return fd;
    } catch (error) {
      this.fault("DNS upstream socket", error);
      return undefined;
    }
  }

  #closeSockets(): void {
    for (const fd of this.#keyOf.keys()) this.sockets.close(fd);
    this.#keyOf.clear();
    this.#sockets = this.#sockets.map(() => []);
  }
}

/** The deadline of its query's latest try, which is still waiting. */
function isCurrent(deadline: TryDeadline): boolean {
  return !deadline.query.done && deadline.tries === deadline.query.tries;
}

/** Same resolvers, devices and limits (only the claims may differ). */
function sameUpstreams(a: DnsForwarding, b: DnsForwarding): boolean {
  const servers = (c: DnsForwarding) => JSON.stringify(c.servers);
  return servers(a) === servers(b) && a.timeoutMs === b.timeoutMs &&
    a.attempts === b.attempts && a.maxInFlight === b.maxInFlight;
}
