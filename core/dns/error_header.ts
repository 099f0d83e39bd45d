/**
 * A header-only error response to a query (RFC 1035 §4.1.1): the query's id, opcode and RD, QR
 * and RA set, `rcode`, no sections. What k8stun answers when it cannot do better (FORMERR for
 * garbage, SERVFAIL when no upstream answered), on the main thread and in the packet loop alike.
 */

/** Response codes k8stun sets itself (RFC 1035 §4.1.1). */
export const RCODES = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3 } as const;

/** The error response to `query` (at least its 12-byte header). */
export function errorHeader(query: Uint8Array, rcode: number): Uint8Array {
  const out = new Uint8Array(12);
  out[0] = query[0];
  out[1] = query[1];
  out[2] = 0x80 | (query[2] & 0x79); // QR, opcode and RD from the query
  out[3] = 0x80 | rcode; // RA
  return out;
}
