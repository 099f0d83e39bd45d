/**
 * SPDY/3 header blocks: a count and length-prefixed name/value pairs, compressed with zlib using
 * the SPDY/3 dictionary, one compression context per direction for the whole connection
 * (kubernetes.md §3.2). The dictionary comes from `spdy-transport` (a protocol constant).
 */
import zlib from "node:zlib";
import { Buffer } from "node:buffer";
// @ts-types="./dictionary.d.ts"
import dictionaries from "spdy-dictionary";

const DICTIONARY: Uint8Array = (dictionaries as Record<string, Uint8Array>)["3"];

/** Encodes name/value pairs (names lower-case). */
export function encodeHeaders(headers: [string, string][]): Uint8Array {
  const encoder = new TextEncoder();
  const parts: Uint8Array[] = [];
  const u32 = (n: number) => new Uint8Array([n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]);
  parts.push(u32(headers.length));
  for (const [name, value] of headers) {
    const n = encoder.encode(name.toLowerCase());
    const v = encoder.encode(value);
    parts.push(u32(n.length), n, u32(v.length), v);
  }
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/** Decodes a header block; throws on truncation. */
export function decodeHeaders(block: Uint8Array): Map<string, string> {
  const view = new DataView(block.buffer, block.byteOffset, block.byteLength);
  const decoder = new TextDecoder();
  const out = new Map<string, string>();
  let offset = 0;
  const count = view.getUint32(offset);
  offset += 4;
  for (let i = 0; i < count; i++) {
    const nameLength = view.getUint32(offset);
    const name = decoder.decode(block.subarray(offset + 4, offset + 4 + nameLength));
    offset += 4 + nameLength;
    const valueLength = view.getUint32(offset);
    const value = decoder.decode(block.subarray(offset + 4, offset + 4 + valueLength));
    offset += 4 + valueLength;
    if (offset > block.length) throw new Error("truncated SPDY header block");
    out.set(name, value);
  }
  return out;
}

/** One direction's zlib context: every call is flushed with Z_SYNC_FLUSH, in order. */
class ZlibContext {
  #chain: Promise<unknown> = Promise.resolve();
  readonly #stream: zlib.Deflate | zlib.Inflate;
  #chunks: Uint8Array[] = [];

  constructor(stream: zlib.Deflate | zlib.Inflate) {
    this.#stream = stream;
    stream.on("data", (chunk: Uint8Array) => this.#chunks.push(chunk));
    stream.on("error", () => {});
  }

  run(input: Uint8Array): Promise<Uint8Array> {
    const result = this.#chain.then(() =>
      new Promise<Uint8Array>((resolve, reject) => {
        this.#chunks = [];
        this.#stream.write(Buffer.from(input), (error) => {
          if (error) reject(error);
        });
        this.#stream.flush(zlib.constants.Z_SYNC_FLUSH, () => {
          const total = this.#chunks.reduce((s, c) => s + c.length, 0);
          const out = new Uint8Array(total);
          let offset = 0;
          for (const c of this.#chunks) {
            out.set(c, offset);
            offset += c.length;
          }
          resolve(out);
        });
      })
    );
    this.#chain = result.catch(() => {});
    return result;
  }

  close(): void {
    this.#stream.destroy();
  }
}

/** Compresses outgoing header blocks. */
export class HeaderCompressor {
  readonly #context = new ZlibContext(zlib.createDeflate({ dictionary: Buffer.from(DICTIONARY) }));
  compress(headers: [string, string][]): Promise<Uint8Array> {
    return this.#context.run(encodeHeaders(headers));
  }
  close(): void {
    this.#context.close();
  }
}

/** Decompresses incoming header blocks. */
export class HeaderDecompressor {
  readonly #context = new ZlibContext(zlib.createInflate({ dictionary: Buffer.from(DICTIONARY) }));
  async decompress(block: Uint8Array): Promise<Map<string, string>> {
    return decodeHeaders(await this.#context.run(block));
  }
  close(): void {
    this.#context.close();
  }
}
