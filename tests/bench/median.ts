/** Medians over benchmark rounds: the figure every area prints. */

/** The middle value (the upper one of an even count). */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/** Each numeric field's median over `rounds` (all of one shape). */
export function medians<T extends Record<keyof T, number>>(rounds: readonly T[]): T {
  const keys = Object.keys(rounds[0]) as (keyof T)[];
  return Object.fromEntries(keys.map((key) => [key, median(rounds.map((r) => r[key]))])) as T;
}
