// The data-free partial-RoPE strategies (docs/method.md §3.1): the same kept pairs for every layer and KV head.
// Pair i is dims (i, i + d_h/2); pair 0 rotates fastest.

import { RopeSelectionError } from "./errors.ts";

export type FixedRopeStrategy = "high" | "low" | "uniform";

/**
 * Kept pairs of `count` out of `half` = d_h/2:
 * - high: {0 … count−1}, the fastest-rotating pairs;
 * - low: {half−count … half−1}, the slowest;
 * - uniform: {⌊k·half/count⌋ : 0 ≤ k < count}, equidistant (GPT-Neo style).
 * @example fixedStrategyPairs("uniform", 16, 4) → [0, 4, 8, 12]
 */
export function fixedStrategyPairs(strategy: FixedRopeStrategy, half: number, count: number): number[] {
  if (!Number.isInteger(count) || count < 1 || count > half) {
    throw new RopeSelectionError("bad_rope_dims", `cannot keep ${count} of ${half} frequency pairs`);
  }
  switch (strategy) {
    case "high":
      return Array.from({ length: count }, (_, k) => k);
    case "low":
      return Array.from({ length: count }, (_, k) => half - count + k);
    case "uniform":
      return Array.from({ length: count }, (_, k) => Math.floor((k * half) / count));
  }
}
