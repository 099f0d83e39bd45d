/**
 * SPDY/3 header blocks: a count and length-prefixed name/value pairs in a zlib stream that uses
 * the SPDY/3 dictionary, one stream per direction for the whole connection
 * (docs/portforward.md §4).
 * The dictionary comes from `spdy-transport` (a protocol constant).
 */
import zlib from "node:zlib";
import { Buffer } from "node:buffer";
// @ts-types="./dictionary.d.ts"
import dictionaries from "spdy-dictionary";
import { concatBytes } from "../../stream/concat_bytes.ts";

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
  return concatBytes(parts);
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

/**
 * The most one incoming header block may inflate to. Port-forward header blocks are a few dozen
 * bytes; a block that inflates past this is a decompression bomb (a 1 MiB frame of deflated
 * zeros inflates to a GiB), refused while it inflates instead of being collected in memory.
 */
export const MAX_INFLATED_HEADER_BLOCK = 256 * 1024;

/**
 * One direction's zlib context: every call is flushed with Z_SYNC_FLUSH, in order. Output past
 * `maxOutput` per call fails that call and ends the context (its stream state is lost with it).
 */
class ZlibContext {
  #chain: Promise<unknown> = Promise.resolve();
  readonly #stream: zlib.Deflate | zlib.Inflate;
  #chunks: Uint8Array[] = [];
  #length = 0;
  #overflow?: () => void;

  constructor(stream: zlib.Deflate | zlib.Inflate, maxOutput = Infinity) {
    this.#stream = stream;
    stream.on("data", (chunk: Uint8Array) => {
      this.#length += chunk.length;
      if (this.#length > maxOutput) return this.#overflow?.();
      this.#chunks.push(chunk);
    });
    stream.on("error", () => {});
  }

  run(input: Uint8Array): Promise<Uint8Array> {
    const result = this.#chain.then(() =>
      new Promise<Uint8Array>((resolve, reject) => {
        if (this.#stream.destroyed) {
          reject(new Error("the SPDY header stream ended after a block inflated too far"));
          return;
        }
        this.#chunks = [];
        this.#length = 0;
        this.#overflow = () => {
          this.#chunks = [];
          this.#stream.destroy();
          reject(
            new Error(`SPDY header block inflates past ${MAX_INFLATED_HEADER_BLOCK >> 10} KiB`),
          );
        };
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

/** Adler-32 (RFC 1950 §8.2), for the dictionary identifier of the zlib header. */
function adler32(bytes: Uint8Array): number {
  let a = 1;
  let b = 0;
  for (const byte of bytes) {
    a = (a + byte) % 65521;
    b = (b + a) % 65521;
  }
  return ((b << 16) | a) >>> 0;
}

/**
 * Writes outgoing header blocks as one zlib stream per connection made of stored (uncompressed)
 * deflate blocks: the zlib header with FDICT and the SPDY dictionary's Adler-32 first (RFC 1950
 * §2.2), then per block `00 LEN ~LEN bytes` (RFC 1951 §3.2.4, BFINAL 0) and the empty stored block
 * `00 00 00 ff ff` that Z_SYNC_FLUSH writes: inflaters such as Go's hand out a stored block's bytes
 * only when the next block begins, so without it the kubelet would wait for the next frame. Every
 * SPDY/3 inflater reads it, and it is synchronous: a new connection costs no trip through a zlib
 * worker, for a few dozen bytes more on the wire.
 */
export class HeaderBlockEncoder {
  #started = false;

  encode(headers: [string, string][]): Uint8Array {
    const raw = encodeHeaders(headers);
    if (raw.length > 0xffff) throw new Error("SPDY header block over 64 KiB");
    const prefix = this.#started ? 0 : 6;
    this.#started = true;
    const out = new Uint8Array(prefix + 5 + raw.length + SYNC_FLUSH.length);
    const view = new DataView(out.buffer);
    if (prefix) {
      // CMF 0x78 (deflate, 32 KiB window); FLG 0xbb: FDICT, level 2, FCHECK making it % 31 == 0.
      out[0] = 0x78;
      out[1] = 0xbb;
      view.setUint32(2, DICTIONARY_ID);
    }
    out[prefix] = 0x00; // BFINAL 0, BTYPE 00 (stored), padded to the byte boundary
    view.setUint16(prefix + 1, raw.length, true);
    view.setUint16(prefix + 3, ~raw.length & 0xffff, true);
    out.set(raw, prefix + 5);
    out.set(SYNC_FLUSH, prefix + 5 + raw.length);
    return out;
  }
}

const DICTIONARY_ID = adler32(DICTIONARY);
/** An empty non-final stored block: what zlib's Z_SYNC_FLUSH ends each flush with. */
const SYNC_FLUSH = new Uint8Array([0x00, 0x00, 0x00, 0xff, 0xff]);

/** Decompresses incoming header blocks. */
export class HeaderDecompressor {
  readonly #context = new ZlibContext(
    zlib.createInflate({ dictionary: Buffer.from(DICTIONARY) }),
    MAX_INFLATED_HEADER_BLOCK,
  );
  async decompress(block: Uint8Array): Promise<Map<string, string>> {
    return decodeHeaders(await this.#context.run(block));
  }
  close(): void {
    this.#context.close();
  }
}
