/**
 * A TLS connection to the API server as the Node socket `ws` expects, backed by
 * `Deno.connectTls` and reading only when asked.
 *
 * Why not `node:tls`: with the pinned Deno a `node:tls` socket keeps reading from the kernel after
 * `pause()` (even after `readStop()` on its handle), so a port-forward session that stops reading
 * its WebSocket — its backpressure towards the API server — saw the bytes pile up inside the TLS
 * socket instead (256 MiB for a pod streaming into a connection the app did not read). Here a read
 * is issued only from `_read`, which Node's stream machinery calls while the readable side is
 * below its high-water mark: a paused socket holds at most that plus one chunk, the rest waits in
 * the kernel and TCP's window stops the sender.
 */
import { Buffer } from "node:buffer";
import { Duplex } from "node:stream";
import { concatBytes } from "../stream/concat_bytes.ts";

/** What a TLS dial to the API server needs; PEM strings throughout. */
export interface DenoTlsMaterial {
  /** The cluster's CA (kubeconfig `certificate-authority(-data)`), added to the system roots. */
  caCerts?: string[];
  /** Client certificate chain and key (kubeconfig `client-certificate(-data)`/`client-key(-data)`). */
  cert?: string;
  key?: string;
  /**
   * Sets TCP_NODELAY on the TCP socket with this local port: a connection that presents a client
   * certificate is opened by `Deno.connectTls`, whose socket offers no such call (absent: Nagle
   * stays on; the socket still sends what one turn wrote as one write).
   */
  noDelay?: (localPort: number) => Promise<unknown>;
  /**
   * Opens the TCP connection through the cluster's proxy (proxy_tunnel.ts) instead of directly;
   * TLS then starts on the tunnel. Not with a client certificate (only `connectTls` presents one).
   */
  tunnel?: (hostname: string, port: number) => Promise<Deno.TcpConn>;
}

/** The connection options `node:http` hands a `createConnection` (only those used here). */
interface ConnectionOptions {
  host?: string;
  hostname?: string;
  port?: number | string;
  /** The TLS server name (kubeconfig `tls-server-name`); "" means none (an IP host). */
  servername?: string;
  /** Idle limit in ms (`net.connect`'s `timeout`). */
  timeout?: number;
}

/** How long `destroy()` lets already-written bytes drain before it closes the connection. */
const DESTROY_DRAIN_MS = 250;

/** Unwritten bytes past which a writer waits (backpressure, as a socket's send buffer). */
const COALESCE_BYTES = 64 * 1024;

/**
 * Bytes asked per read: a TLS read returns at most one record, 16 KiB of plaintext (RFC 8446
 * §5.1), so a bulk transfer's reads fill the buffer exactly and it is handed on without a copy.
 */
const READ_SIZE = 16 * 1024;

/**
 * A Node `Duplex` over a Deno TLS connection. Writes go out in order; `end()` sends close_notify;
 * `destroy()` closes the connection. It implements the `net.Socket` members `node:http` and `ws`
 * call (`setTimeout`, `setNoDelay`, `setKeepAlive`, `ref`, `unref`, the address getters).
 */
export class DenoTlsSocket extends Duplex {
  #conn?: Deno.Conn;
  readonly #connected: Promise<Deno.Conn>;
  #reading = false;
  /** The read buffer, kept between reads that returned only a few bytes (they are copied out). */
  #scratch?: Uint8Array;
  #idleMs = 0;
  #idleTimer?: ReturnType<typeof setTimeout>;
  /** Chunks written this turn, sent together by the next flush. */
  #pending: Uint8Array[] = [];
  /** Bytes taken from writers and not yet written to the connection. */
  #unwrittenBytes = 0;
  /** Writers of pending chunks told "done" only once their chunk is written (backpressure). */
  #pendingCallbacks: ((error?: Error) => void)[] = [];
  /** The last flush: flushes go out one after another, in order. */
  #writing: Promise<void> = Promise.resolve();
  connecting = true;

  constructor(connect: () => Promise<Deno.Conn>) {
    super({ allowHalfOpen: false });
    this.#connected = connect();
    this.#connected.then((conn) => {
      if (this.destroyed) {
        conn.close();
        return;
      }
      this.#conn = conn;
      this.connecting = false;
      this.emit("connect");
      this.emit("secureConnect");
    }, (error) => this.destroy(error));
    this.#connected.catch(() => {});
  }

  override _read(): void {
    if (this.#reading) return;
    this.#reading = true;
    this.#connected.then(async (conn) => {
      // A full buffer is handed on as it is; a short read's bytes are copied out and the buffer
      // is read into again, so a few bytes never hold a whole buffer.
      const buffer = this.#scratch ?? new Uint8Array(READ_SIZE);
      this.#scratch = undefined;
      const n = await conn.read(buffer);
      this.#reading = false;
      this.#active();
      if (n === null || n <= READ_SIZE / 2) this.#scratch = buffer;
      // A short read is copied so a whole buffer does not sit behind a few bytes.
      if (n === null) this.push(null);
      else if (n > READ_SIZE / 2) this.push(Buffer.from(buffer.buffer, 0, n));
      else this.push(Buffer.from(buffer.subarray(0, n)));
    }).catch((error) => {
      this.#reading = false;
      if (!this.destroyed) this.destroy(error);
    });
  }

  /**
   * Chunks written in one turn of the event loop leave in one TLS write. A server socket cannot be
   * given TCP_NODELAY here (Deno's TLS listener offers no such call), so a second small write while
   * the first is unacknowledged would wait for the peer's delayed ACK (Nagle, RFC 896): tens of
   * milliseconds for a SPDY stream pair or a reply header followed by its first bytes. Writes are
   * taken at once (copied) while fewer than {@link COALESCE_BYTES} are unwritten; past that, the
   * writer waits until the connection has taken its chunk.
   */
  override _write(chunk: Uint8Array, _encoding: string, callback: (error?: Error) => void): void {
    // A writer told "done" may reuse its buffer at once (the tunnel's frame writer does), so a
    // chunk acknowledged before it is written is copied; a large one is acknowledged only once
    // written, and not copied.
    const early = this.#unwrittenBytes + chunk.length < COALESCE_BYTES;
    // (`Buffer#slice` is a view, not a copy: copy through Uint8Array's.)
    this.#pending.push(early ? Uint8Array.prototype.slice.call(chunk) : chunk);
    this.#unwrittenBytes += chunk.length;
    if (this.#pending.length === 1) queueMicrotask(() => this.#flush());
    if (early) callback();
    else this.#pendingCallbacks.push(callback);
  }

  /** Sends what this turn wrote as one write, after the writes before it. */
  #flush(): void {
    if (this.#pending.length === 0) return; // flushed early by _final or _destroy
    const bytes = this.#pending.length === 1 ? this.#pending[0] : concatBytes(this.#pending);
    const callbacks = this.#pendingCallbacks;
    this.#pending = [];
    this.#pendingCallbacks = [];
    this.#writing = this.#writing
      .then(() => this.#connected)
      .then((conn) => this.#writeAll(conn, bytes))
      .then(() => {
        this.#unwrittenBytes -= bytes.length;
        for (const callback of callbacks) callback();
      }, (error) => {
        for (const callback of callbacks) callback(error);
        if (!this.destroyed) this.destroy(error);
        throw error;
      });
    this.#writing.catch(() => {});
  }

  async #writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
    for (let offset = 0; offset < bytes.length;) offset += await conn.write(bytes.subarray(offset));
    this.#active();
  }

  override _final(callback: (error?: Error) => void): void {
    this.#flush(); // what this turn wrote goes before close_notify
    this.#writing.then(() => this.#connected).then((conn) => conn.closeWrite())
      .then(() => callback(), () => callback());
  }

  /**
   * Closes the connection once what was written before is out (a reply followed by `destroy()`
   * in the same turn still reaches the peer), but no later than {@link DESTROY_DRAIN_MS}: a peer
   * that stopped reading does not hold the connection open.
   */
  override _destroy(error: Error | null, callback: (error: Error | null) => void): void {
    clearTimeout(this.#idleTimer);
    this.#flush();
    let closed = false;
    const close = () => {
      if (closed) return;
      closed = true;
      clearTimeout(deadline);
      try {
        this.#conn?.close();
      } catch {
        // closed already
      }
    };
    const deadline = setTimeout(close, DESTROY_DRAIN_MS);
    this.#writing.then(close, close);
    callback(error);
  }

  /** `net.Socket#setTimeout`: a "timeout" event after `ms` without reads or writes (0: off). */
  setTimeout(ms: number, onTimeout?: () => void): this {
    this.#idleMs = ms;
    if (onTimeout) {
      if (ms === 0) this.off("timeout", onTimeout);
      else this.once("timeout", onTimeout);
    }
    this.#active();
    return this;
  }

  #active(): void {
    // Called per read and write: with no idle limit (ws turns it off once open), nothing to do.
    if (this.#idleTimer === undefined && this.#idleMs === 0) return;
    clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    if (this.#idleMs > 0 && !this.destroyed) {
      this.#idleTimer = setTimeout(() => this.emit("timeout"), this.#idleMs);
    }
  }

  /** TCP_NODELAY is chosen when the connection is made (see {@link denoTlsConnector}). */
  setNoDelay(_noDelay = true): this {
    return this;
  }

  setKeepAlive(enable = false): this {
    this.#connected.then((conn) => (conn as Deno.TcpConn).setKeepAlive?.(enable), () => {});
    return this;
  }

  ref(): this {
    return this;
  }

  unref(): this {
    return this;
  }

  get remoteAddress(): string | undefined {
    return (this.#conn?.remoteAddr as Deno.NetAddr | undefined)?.hostname;
  }

  get remotePort(): number | undefined {
    return (this.#conn?.remoteAddr as Deno.NetAddr | undefined)?.port;
  }

  get localAddress(): string | undefined {
    return (this.#conn?.localAddr as Deno.NetAddr | undefined)?.hostname;
  }

  get localPort(): number | undefined {
    return (this.#conn?.localAddr as Deno.NetAddr | undefined)?.port;
  }
}

/**
 * A `createConnection` for `ws`/`node:http` that dials with Deno's TLS. The server name is the
 * kubeconfig's `tls-server-name` when set (the TCP connection still goes to the URL's host), the
 * URL's host otherwise.
 */
export function denoTlsConnector(
  material: DenoTlsMaterial,
): (options: ConnectionOptions) => DenoTlsSocket {
  return (options) => {
    const host = (options.host ?? options.hostname ?? "localhost").replace(/^\[|\]$/g, "");
    const port = Number(options.port ?? 443);
    const serverName = options.servername || host;
    const socket = new DenoTlsSocket(async () => {
      // TCP first so it can have TCP_NODELAY (a TLS connection offers no such call): SPDY frames
      // and WebSocket messages are small and must not wait for the server's delayed ACK. Only
      // `connectTls` presents a client certificate; its socket gets the option from `noDelay`.
      const withCertificate = material.cert !== undefined && material.key !== undefined;
      const tcp = () => material.tunnel?.(host, port) ?? noDelayConnect(host, port);
      const conn = withCertificate
        ? await Deno.connectTls({ hostname: host, port, ...tlsOptions(material) })
        : await Deno.startTls(await tcp(), {
          hostname: serverName,
          ...tlsOptions(material),
        });
      if (withCertificate && material.noDelay) {
        await material.noDelay((conn.localAddr as Deno.NetAddr).port).catch(() => {});
      }
      await conn.handshake();
      return conn;
    });
    // As `net.connect` does: `node:http` passes the request's timeout (ws: handshakeTimeout) here
    // and listens for the socket's "timeout".
    if (options.timeout) socket.setTimeout(options.timeout);
    return socket;
  };
}

async function noDelayConnect(hostname: string, port: number): Promise<Deno.TcpConn> {
  const tcp = await Deno.connect({ hostname, port });
  tcp.setNoDelay(true);
  return tcp;
}

function tlsOptions(material: DenoTlsMaterial) {
  return {
    ...(material.caCerts ? { caCerts: material.caCerts } : {}),
    ...(material.cert && material.key ? { cert: material.cert, key: material.key } : {}),
  };
}
