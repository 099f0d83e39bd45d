/**
 * Reading a handshake from a socket in exact pieces, with a deadline, without losing bytes that
 * arrived after it: a server that speaks first (a banner, a greeting) may send them in the same
 * segment as its handshake reply, a client may pipeline its first bytes with its request.
 */
import { deadline } from "../deadline.ts";
import type { Duplex } from "../../mod.ts";
import { connDuplex } from "./conn_duplex.ts";

/** {@link BufferedConn.readUntil} found no delimiter within its limit. */
export class LimitExceeded extends Error {}

/** A connection with a read-ahead buffer. */
export class BufferedConn {
  #buffer = new Uint8Array(0);

  constructor(readonly conn: Deno.Conn, readonly deadline: number) {}

  /** Exactly `n` bytes, or throws on EOF or when the deadline passes. */
  async readExactly(n: number): Promise<Uint8Array> {
    while (this.#buffer.length < n) await this.#fill();
    const out = this.#buffer.slice(0, n);
    this.#buffer = this.#buffer.subarray(n);
    return out;
  }

  /** Bytes up to and including `delimiter`, at most `limit` bytes. */
  async readUntil(delimiter: Uint8Array, limit: number): Promise<Uint8Array> {
    while (true) {
      const at = indexOf(this.#buffer, delimiter);
      if (at >= 0) return await this.readExactly(at + delimiter.length);
      if (this.#buffer.length >= limit) {
        throw new LimitExceeded(`no end of the head within ${limit} bytes`);
      }
      await this.#fill();
    }
  }

  /** Whatever is buffered beyond the handshake. */
  rest(): Uint8Array {
    const out = this.#buffer;
    this.#buffer = new Uint8Array(0);
    return out;
  }

  /** The connection as a duplex whose readable starts with what is buffered beyond the handshake. */
  duplex(): Duplex {
    return connDuplex(this.conn, this.rest());
  }

  async #fill(): Promise<void> {
    const left = this.deadline - Date.now();
    if (left <= 0) throw new Error("handshake timed out");
    const chunk = new Uint8Array(4096);
    const n = await deadline(this.conn.read(chunk), left, () => new Error("handshake timed out"));
    if (n === null) throw new Error("connection closed during the handshake");
    const merged = new Uint8Array(this.#buffer.length + n);
    merged.set(this.#buffer);
    merged.set(chunk.subarray(0, n), this.#buffer.length);
    this.#buffer = merged;
  }
}

function indexOf(haystack: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}
