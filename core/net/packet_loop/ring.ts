/**
 * A single-producer, single-consumer ring of records in a SharedArrayBuffer: how the packet-loop
 * Worker and the main thread hand each other flow operations and events without `postMessage`
 * (docs/platform.md §2.2: a shared ring moves ~3× the messages of `postMessage`, and the consumer
 * reads it as soon as it wakes instead of after an event-loop turn).
 *
 * A record is a 16-byte header — payload length, kind (non-zero) and two fields `a` and `b`, all
 * u32 — and the payload, padded to 16 bytes. The two positions are free-running u32 byte counters
 * kept in the same buffer; the producer publishes with a release store of its counter after
 * writing the record, the consumer frees space with a store of its own after reading a batch
 * (Atomics are sequentially consistent, which covers both). A record never wraps: when it does
 * not fit before the end, a padding record fills the rest and it starts again at offset 0.
 */
import { type CopyBytes, copyWithSet } from "../copy.ts";

const HEAD = 0; // Int32 index: bytes ever written (producer)
const TAIL = 1; // Int32 index: bytes ever consumed (consumer)
const CONTROL_BYTES = 64; // counters on their own cache line, apart from the data
const RECORD_HEADER = 16;
const PADDING = 0;

/** Largest payload one record carries; callers split longer byte streams. */
export const MAX_RECORD_PAYLOAD = 256 * 1024;

/** Allocates the shared memory of a ring holding `capacity` bytes (a power of two). */
export function createRing(capacity: number): SharedArrayBuffer {
  if (capacity < 4 * (MAX_RECORD_PAYLOAD + RECORD_HEADER) || (capacity & (capacity - 1)) !== 0) {
    throw new RangeError(`ring capacity ${capacity}: a power of two ≥ 4 records required`);
  }
  return new SharedArrayBuffer(CONTROL_BYTES + capacity);
}

// Records start on 16-byte boundaries, so a padding header always fits before the end.
const align16 = (n: number) => (n + 15) & ~15;

class RingMemory {
  protected readonly control: Int32Array;
  protected readonly bytes: Uint8Array;
  protected readonly view: DataView;
  protected readonly mask: number;
  /** How payloads are copied in and out (the OS's memcpy in the data plane: TunHost.copy, PacketIo.copy). */
  readonly copy: CopyBytes;
  /** The shared memory, to hand to the other thread. */
  readonly buffer: SharedArrayBuffer;

  constructor(buffer: SharedArrayBuffer, copy: CopyBytes = copyWithSet) {
    this.buffer = buffer;
    this.copy = copy;
    this.control = new Int32Array(buffer, 0, 2);
    this.bytes = new Uint8Array(buffer, CONTROL_BYTES);
    this.view = new DataView(buffer, CONTROL_BYTES);
    this.mask = this.bytes.length - 1;
  }

  protected get head(): number {
    return Atomics.load(this.control, HEAD) >>> 0;
  }

  protected get tail(): number {
    return Atomics.load(this.control, TAIL) >>> 0;
  }
}

/** The producing end. */
export class RingWriter extends RingMemory {
  /** Bytes ever written (a free-running u32): where the record pushed last ends. */
  get written(): number {
    return this.head;
  }

  /** Bytes the consumer has read so far (a free-running u32). */
  get consumed(): number {
    return this.tail;
  }

  /**
   * Appends a record whose payload is the concatenation of `parts` (written in place, no
   * intermediate copy). Returns false, writing nothing, when the ring lacks room.
   */
  push(kind: number, a: number, b: number, parts: readonly Uint8Array[] = []): boolean {
    let payload = 0;
    for (const part of parts) payload += part.length;
    if (payload > MAX_RECORD_PAYLOAD) throw new RangeError(`record payload ${payload} too long`);
    const length = align16(RECORD_HEADER + payload);
    const head = this.head;
    const free = this.bytes.length - ((head - this.tail) >>> 0);
    let at = head & this.mask;
    const toEnd = this.bytes.length - at;
    const padding = toEnd < length ? toEnd : 0;
    if (padding + length > free) return false;
    if (padding > 0) {
      this.#header(at, padding, PADDING, 0, 0);
      at = 0;
    }
    this.#header(at, payload, kind, a, b);
    let offset = at + RECORD_HEADER;
    for (const part of parts) {
      this.copy(this.bytes.subarray(offset), part);
      offset += part.length;
    }
    Atomics.store(this.control, HEAD, (head + padding + length) | 0);
    return true;
  }

  /** Header words: the payload length (a padding record: the bytes it skips), kind, a, b. */
  #header(at: number, size: number, kind: number, a: number, b: number): void {
    this.view.setUint32(at, size, true);
    this.view.setUint32(at + 4, kind, true);
    this.view.setUint32(at + 8, a >>> 0, true);
    this.view.setUint32(at + 12, b >>> 0, true);
  }
}

/**
 * One record as the consumer sees it. `payload` is a view into the ring, valid only until the
 * drain that visits it returns: keep a copy (`RingReader.keep`) of what must outlive it.
 */
export type RecordVisitor = (kind: number, a: number, b: number, payload: Uint8Array) => void;

/** The consuming end. */
export class RingReader extends RingMemory {
  /**
   * Visits every published record in order, calls `beforeFree` (a consumer that gathers views
   * across records uses them there), and then frees them all: every payload view of one drain
   * stays valid until then, and not a moment longer — the producer may overwrite them as soon as
   * this returns. Returns the count.
   */
  drain(visit: RecordVisitor, beforeFree?: () => void): number {
    const head = this.head;
    let tail = this.tail;
    let count = 0;
    try {
      while (tail !== head) {
        const at = tail & this.mask;
        const size = this.view.getUint32(at, true);
        const kind = this.view.getUint32(at + 4, true);
        if (kind === PADDING) {
          tail = (tail + size) >>> 0;
          continue;
        }
        // Past the record before the visit: a visitor that throws does not see it again.
        tail = (tail + align16(RECORD_HEADER + size)) >>> 0;
        count++;
        visit(
          kind,
          this.view.getUint32(at + 8, true),
          this.view.getUint32(at + 12, true),
          this.bytes.subarray(at + RECORD_HEADER, at + RECORD_HEADER + size),
        );
      }
      beforeFree?.();
    } finally {
      Atomics.store(this.control, TAIL, tail | 0);
    }
    return count;
  }

  /** A copy of a payload the visitor wants to keep (`slice()`, at memcpy speed). */
  keep(payload: Uint8Array): Uint8Array {
    const copy = new Uint8Array(payload.length);
    this.copy(copy, payload);
    return copy;
  }

  /** Whether a record is waiting. */
  get pending(): boolean {
    return this.head !== this.tail;
  }
}
