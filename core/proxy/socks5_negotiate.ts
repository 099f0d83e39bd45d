/**
 * The client side of a SOCKS5 handshake (RFC 1928; RFC 1929 credentials) on a connected socket,
 * under one deadline: one timer for the whole exchange, not one per read.
 */
import { DialError, type DialTarget } from "../../mod.ts";
import { socks5ConnectRequest, socks5NoAuthConnect } from "../net/wire/socks5_client.ts";
import { failureOfReply } from "./socks5.ts";

/** How long the proxy has to answer the whole handshake. */
export const HANDSHAKE_TIMEOUT_MS = 10_000;

const seconds = HANDSHAKE_TIMEOUT_MS / 1000;

/** Credentials, when the proxy wants them. */
export interface SocksCredentials {
  username?: string;
  password?: string;
}

/**
 * Asks the proxy on `conn` to CONNECT to `target`. Resolves with the bytes that came after the
 * proxy's reply (the target's first bytes); rejects with a {@link DialError}, `conn` closed.
 */
export async function negotiate(
  conn: Deno.Conn,
  credentials: SocksCredentials,
  target: DialTarget,
): Promise<Uint8Array> {
  let expired = false;
  const timer = setTimeout(() => {
    expired = true;
    conn.close(); // the pending read or write fails at once
  }, HANDSHAKE_TIMEOUT_MS);
  const replies = new ReplyReader(conn);
  const host = target.kind === "host" ? target.host : target.ip!;
  const port = target.port;
  try {
    const auth = credentials.username !== undefined;
    const request = socks5ConnectRequest(host, port);
    // Without credentials the only method offered is "none", so the server either takes it or
    // refuses and closes: the request can follow the greeting in the same segment, one round
    // trip instead of two (RFC 1928 §3, §4).
    await conn.write(auth ? new Uint8Array([5, 1, 2]) : socks5NoAuthConnect(host, port));
    const [, method] = await replies.take(2);
    if (method === 0xff) {
      throw new DialError("forbidden", "the SOCKS upstream accepts none of our methods");
    }
    if (method !== (auth ? 2 : 0)) {
      throw new DialError("error", `the SOCKS upstream chose method ${method}, not offered`);
    }
    if (auth) {
      const user = new TextEncoder().encode(credentials.username ?? "");
      const pass = new TextEncoder().encode(credentials.password ?? "");
      await conn.write(new Uint8Array([1, user.length, ...user, pass.length, ...pass]));
      const [, status] = await replies.take(2);
      if (status !== 0) {
        throw new DialError("forbidden", "the SOCKS upstream rejected the credentials");
      }
      await conn.write(request);
    }
    const [, reply, , type] = await replies.take(4);
    await replies.take(type === 1 ? 6 : type === 4 ? 18 : (await replies.take(1))[0] + 2);
    if (reply !== 0) {
      throw new DialError(
        failureOfReply(reply),
        `SOCKS upstream answered ${reply} for ${host}:${port}`,
      );
    }
    return replies.rest();
  } catch (error) {
    try {
      conn.close();
    } catch {
      // closed already (the deadline passed)
    }
    if (error instanceof DialError) throw error;
    throw expired
      ? new DialError("timeout", `the SOCKS upstream did not answer within ${seconds} s`)
      : new DialError("error", (error as Error).message);
  } finally {
    clearTimeout(timer);
  }
}

/** Reads replies in exact pieces, keeping what arrived beyond them. */
class ReplyReader {
  #buffer = new Uint8Array(512);
  #start = 0;
  #end = 0;

  constructor(readonly conn: Deno.Conn) {}

  /** Exactly `n` (≤ 256) bytes, or throws at the end of the stream. */
  async take(n: number): Promise<Uint8Array> {
    while (this.#end - this.#start < n) {
      if (this.#buffer.length - this.#start < n) {
        this.#buffer.copyWithin(0, this.#start, this.#end);
        this.#end -= this.#start;
        this.#start = 0;
      }
      const read = await this.conn.read(this.#buffer.subarray(this.#end));
      if (read === null) throw new Error("the SOCKS upstream closed the connection");
      this.#end += read;
    }
    const out = this.#buffer.subarray(this.#start, this.#start + n);
    this.#start += n;
    return out;
  }

  /** What came after the replies. */
  rest(): Uint8Array {
    return this.#buffer.slice(this.#start, this.#end);
  }
}
