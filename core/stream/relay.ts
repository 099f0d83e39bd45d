/**
 * Relays bytes between two duplex streams with backpressure both ways (WHATWG streams pipe at
 * the pace of the slower side), half-close both ways (one side's end closes the other's
 * writable), and abort both on any error, so a failure never looks like a clean end.
 */
import type { Duplex } from "../../mod.ts";

/** Bytes that went each way. */
export interface RelayResult {
  aToB: number;
  bToA: number;
  error?: string;
}

function counted(counter: { n: number }): TransformStream<Uint8Array, Uint8Array> {
  return new TransformStream({
    transform(chunk, controller) {
      counter.n += chunk.length;
      controller.enqueue(chunk);
    },
  });
}

/** Relays until both directions end. */
export async function relay(a: Duplex, b: Duplex): Promise<RelayResult> {
  const up = { n: 0 };
  const down = { n: 0 };
  let error: string | undefined;
  const fail = (e: unknown) => {
    error ??= e instanceof Error ? e.message : String(e);
    a.abort(e);
    b.abort(e);
  };
  await Promise.all([
    a.readable.pipeThrough(counted(up)).pipeTo(b.writable).catch(fail),
    b.readable.pipeThrough(counted(down)).pipeTo(a.writable).catch(fail),
  ]);
  return { aToB: up.n, bToA: down.n, error };
}
