/**
 * The queries k8stun has sent upstream and not yet seen answered, and the rule that decides
 * whether a datagram answers one of them (RFC 5452 §9.1): it arrived on the socket the query
 * left by (a connected socket, or a source checked against the server: the address and port we
 * asked), it is a response carrying the id we sent, and its question section is the query's
 * (names compared case-insensitively, RFC 4343; type and class exactly). Ids are ours, drawn at
 * random for every query (RFC 5452 §4, §9.2), so they are unpredictable even when the client's
 * are not, and never shared by two queries in flight. Pure: no sockets, no clocks.
 */

/** One query in flight. */
interface Entry<T> {
  socket: number;
  question: string;
  value: T;
}

/** Where a name may point to earlier in a message (RFC 1035 §4.1.4): at most this many hops. */
const MAX_POINTERS = 16;
/** RFC 1035 §3.1: a name is at most 255 octets on the wire. */
const MAX_NAME = 255;

/**
 * The question section of a message as a comparable string — lowercased name, type and class —
 * or undefined when it cannot be read or holds more than one question (RFC 9619: a query has at
 * most one). The string is at most a few hundred bytes whatever the message's size.
 */
export function questionKey(message: Uint8Array): string | undefined {
  if (message.length < 12) return undefined;
  const count = (message[4] << 8) | message[5];
  if (count === 0) return "";
  if (count > 1) return undefined;
  const labels: string[] = [];
  let offset = 12;
  let end = -1; // where the question continues after a pointer
  let octets = 0;
  for (let hops = 0; offset < message.length;) {
    const length = message[offset];
    if ((length & 0xc0) === 0xc0) {
      if (offset + 1 >= message.length || ++hops > MAX_POINTERS) return undefined;
      if (end < 0) end = offset + 2;
      offset = ((length & 0x3f) << 8) | message[offset + 1];
      continue;
    }
    if (length > 63) return undefined; // 0x40 and 0x80: extended label types (RFC 6891 §5)
    if (length === 0) {
      if (end < 0) end = offset + 1;
      if (end + 4 > message.length) return undefined;
      const typeAndClass = (message[end] << 24 | message[end + 1] << 16 | message[end + 2] << 8 |
        message[end + 3]) >>> 0;
      return `${labels.join(".")}/${typeAndClass.toString(16)}`;
    }
    octets += length + 1;
    if (octets > MAX_NAME || offset + 1 + length > message.length) return undefined;
    let label = "";
    for (let i = offset + 1; i <= offset + length; i++) {
      const byte = message[i];
      // ASCII case folding only (RFC 4343 §3); a dot inside a label stays distinct from a
      // label boundary.
      const folded = byte >= 0x41 && byte <= 0x5a ? byte | 0x20 : byte;
      label += folded === 0x2e || folded === 0x5c
        ? `\\${String.fromCharCode(folded)}`
        : String.fromCharCode(folded);
    }
    labels.push(label);
    offset += 1 + length;
  }
  return undefined;
}

/** Outstanding upstream queries, keyed by the id we sent. */
export class InflightQueries<T> {
  readonly #entries = new Map<number, Entry<T>>();
  /** Datagrams that answered nothing in flight (late, stale or forged). */
  dropped = 0;

  /**
   * @param capacity the most queries in flight (ids are 16 bits; the bound is the memory's).
   * @param randomId a source of uniformly random 16-bit ids.
   */
  constructor(
    readonly capacity: number,
    readonly randomId: () => number = cryptoRandomId(),
  ) {
    if (capacity > 32768) throw new RangeError("at most 32,768 queries may be in flight");
  }

  get size(): number {
    return this.#entries.size;
  }

  /**
   * Records `query`, about to leave by `socket`: the id to send it with, or undefined when
   * `capacity` queries are in flight or the query's question cannot be read. `question` is its
   * {@link questionKey}, when the caller has it already.
   */
  add(
    query: Uint8Array,
    socket: number,
    value: T,
    question = questionKey(query),
  ): number | undefined {
    if (this.#entries.size >= this.capacity) return undefined;
    if (question === undefined) return undefined;
    let id = this.randomId();
    // At most half the ids are taken, so each draw is free with probability ≥ 1/2.
    while (this.#entries.has(id)) id = this.randomId();
    this.#entries.set(id, { socket, question, value });
    return id;
  }

  /** Forgets the query sent with `id` (answered elsewhere, timed out or given up). */
  delete(id: number): void {
    this.#entries.delete(id);
  }

  /** Forgets every query in flight, returning them. */
  clear(): T[] {
    const values = [...this.#entries.values()].map((entry) => entry.value);
    this.#entries.clear();
    return values;
  }

  /**
   * The query that `reply`, received on `socket`, answers — removed from the table — or
   * undefined (counted in {@link dropped}) when it answers none.
   */
  match(socket: number, reply: Uint8Array): T | undefined {
    const id = reply.length >= 12 && (reply[2] & 0x80) !== 0 ? (reply[0] << 8) | reply[1] : -1;
    const entry = this.#entries.get(id);
    if (!entry || entry.socket !== socket || questionKey(reply) !== entry.question) {
      this.dropped++;
      return undefined;
    }
    this.#entries.delete(id);
    return entry.value;
  }
}

/** Random ids from the system's CSPRNG, drawn 256 at a time. */
export function cryptoRandomId(): () => number {
  const pool = new Uint16Array(256);
  let next = pool.length;
  return () => {
    if (next === pool.length) {
      crypto.getRandomValues(pool);
      next = 0;
    }
    return pool[next++];
  };
}
