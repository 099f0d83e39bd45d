/** One figure printed by `deno task bench`. */
export interface BenchResult {
  name: string;
  value: number;
  unit: string;
  /** A baseline measured in the same run, for a ratio. */
  baseline?: { name: string; value: number };
  note?: string;
}

/** What one round of the TUN benchmark's client measures (tun_client.ts). */
export interface TunFigures {
  /** Mbit/s app → pod and pod → app. */
  up: number;
  down: number;
  /** New connections per second, one at a time and several at once. */
  cps: number;
  cpsParallel: number;
  /** Request/response latency, µs. */
  p50: number;
  p99: number;
}
