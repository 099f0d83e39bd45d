/**
 * The client's side of a SOCKS5 CONNECT without authentication (RFC 1928), as bytes: the greeting
 * and request sent together (the only method offered is "no authentication", so the request can
 * follow the greeting in one segment: §3, §4), and the incremental parse of the two replies.
 */

/** The CONNECT request for `host` (an IPv4 address or a name) and `port` (§4, §5). */
export function socks5ConnectRequest(host: string, port: number): Uint8Array {
  const ipv4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host);
  if (ipv4) {
    return new Uint8Array([5, 1, 0, 1, ...ipv4.slice(1).map(Number), port >> 8, port & 255]);
  }
  const name = new TextEncoder().encode(host);
  if (name.length > 255) throw new RangeError(`a SOCKS5 host name is at most 255 bytes: ${host}`);
  return new Uint8Array([5, 1, 0, 3, name.length, ...name, port >> 8, port & 255]);
}

/** The greeting offering only "no authentication", then the CONNECT request. */
export function socks5NoAuthConnect(host: string, port: number): Uint8Array {
  const request = socks5ConnectRequest(host, port);
  const out = new Uint8Array(3 + request.length);
  out.set([5, 1, 0]);
  out.set(request, 3);
  return out;
}

/** What the replies said so far. */
export type Socks5Outcome =
  /** Not all of the replies arrived yet. */
  | { kind: "more" }
  /** Connected: `rest` is what followed the replies (the target's first bytes). */
  | { kind: "connected"; rest: Uint8Array }
  /** The proxy refused: `reply` is its code (§6), or 0xff when it took none of our methods. */
  | { kind: "failed"; reply: number; message: string };

/** The longest the two replies together can be: 2 + 4 + 1 + 255 + 2. */
const MAX_REPLIES = 264;

/**
 * Parses the method selection (§3) and the CONNECT reply (§6) from chunks as they arrive. A
 * proxy that breaks the protocol fails like one that refused (code 1, "general failure").
 */
export class Socks5ReplyParser {
  readonly #buffer = new Uint8Array(MAX_REPLIES);
  #have = 0;
  #done = false;

  push(chunk: Uint8Array): Socks5Outcome {
    if (this.#done) throw new Error("the SOCKS5 replies were read already");
    const take = Math.min(chunk.length, MAX_REPLIES - this.#have);
    this.#buffer.set(chunk.subarray(0, take), this.#have);
    this.#have += take;
    const parsed = this.#parse();
    if (typeof parsed !== "number") {
      if (parsed.kind === "failed") this.#done = true;
      return parsed;
    }
    // Connected: what arrived past the replies is the end of this buffer, then the rest of the
    // chunk (beyond what the buffer could take).
    this.#done = true;
    const rest = new Uint8Array(this.#have - parsed + chunk.length - take);
    rest.set(this.#buffer.subarray(parsed, this.#have));
    rest.set(chunk.subarray(take), this.#have - parsed);
    return { kind: "connected", rest };
  }

  /** The length of both replies once they connected, or the outcome so far. */
  #parse(): number | Exclude<Socks5Outcome, { kind: "connected" }> {
    const b = this.#buffer;
    const have = this.#have;
    if (have < 2) return { kind: "more" };
    if (b[0] !== 5) return broken(`a method reply of version ${b[0]}`);
    if (b[1] === 0xff) {
      return { kind: "failed", reply: 0xff, message: "it accepts none of our methods" };
    }
    if (b[1] !== 0) return broken(`it chose method ${b[1]}, which we did not offer`);
    if (have < 2 + 5) return { kind: "more" };
    if (b[2] !== 5) return broken(`a CONNECT reply of version ${b[2]}`);
    const type = b[5];
    const addressLength = type === 1 ? 4 : type === 4 ? 16 : type === 3 ? 1 + b[6] : -1;
    if (addressLength < 0) return broken(`a CONNECT reply with address type ${type}`);
    const length = 2 + 4 + addressLength + 2;
    if (have < length) return { kind: "more" };
    if (b[3] !== 0) {
      return { kind: "failed", reply: b[3], message: `it answered ${b[3]} to CONNECT` };
    }
    return length;
  }
}

function broken(what: string): Exclude<Socks5Outcome, { kind: "connected" }> {
  return { kind: "failed", reply: 1, message: `the SOCKS5 proxy broke the protocol: ${what}` };
}
