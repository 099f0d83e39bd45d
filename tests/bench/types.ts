/** One figure printed by `deno task bench`. */
export interface BenchResult {
  name: string;
  value: number;
  unit: string;
  /** A baseline measured in the same run, for a ratio. */
  baseline?: { name: string; value: number };
  note?: string;
}
