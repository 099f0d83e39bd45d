/**
 * TCP connections by four-tuple, with numbers for keys: a packet's lookup builds no string. The
 * first level is the routed end (VIP and port: few of them), the second the application's end;
 * each level's key, address × 2¹⁶ + port, is an exact integer below 2⁴⁸.
 */
import type { Endpoint } from "./tcp/connection.ts";

const key = (address: number, port: number) => address * 65536 + port;

/** What the table holds: something with both ends of a connection. */
export interface TupleOwner {
  readonly local: Endpoint;
  readonly remote: Endpoint;
}

/** Connections by (application address and port, routed address and port). */
export class FlowTable<T extends TupleOwner> {
  readonly #byLocal = new Map<number, Map<number, T>>();

  /** The entry for a packet from `src`:`srcPort` to `dst`:`dstPort`. */
  get(src: number, srcPort: number, dst: number, dstPort: number): T | undefined {
    return this.#byLocal.get(key(dst, dstPort))?.get(key(src, srcPort));
  }

  /** Enters `value` under its own tuple, replacing what held it. */
  set(value: T): void {
    const localKey = key(value.local.address, value.local.port);
    let byRemote = this.#byLocal.get(localKey);
    if (!byRemote) this.#byLocal.set(localKey, byRemote = new Map());
    byRemote.set(key(value.remote.address, value.remote.port), value);
  }

  /** Removes `value`, if it still holds its tuple (a newer connection may hold it now). */
  delete(value: T): void {
    const localKey = key(value.local.address, value.local.port);
    const byRemote = this.#byLocal.get(localKey);
    const remoteKey = key(value.remote.address, value.remote.port);
    if (byRemote?.get(remoteKey) !== value) return;
    byRemote.delete(remoteKey);
    if (byRemote.size === 0) this.#byLocal.delete(localKey);
  }
}
