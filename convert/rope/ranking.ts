// Per (layer, KV head) pair scores → ranks and kept pairs (docs/method.md §3.2 steps 6–7): rank 0 is the highest score;
// ties go to the lower (faster) pair, so a ranking is deterministic.

import { RopeSelectionError } from "./errors.ts";

/** Scores laid out [layers × kvHeads × half]. */
export interface PairScores {
  readonly layers: number;
  readonly kvHeads: number;
  readonly half: number;
  readonly values: Float64Array;
}

function check(s: PairScores): void {
  if (s.values.length !== s.layers * s.kvHeads * s.half) {
    throw new RopeSelectionError("bad_scores", `scores hold ${s.values.length} values, expected ${s.layers}×${s.kvHeads}×${s.half}`);
  }
  for (let i = 0; i < s.values.length; i++) {
    if (!Number.isFinite(s.values[i])) throw new RopeSelectionError("bad_scores", `score ${i} is not finite (${s.values[i]})`);
  }
}

/** Pair indices of one head ordered by descending score. */
function order(s: PairScores, l: number, g: number): number[] {
  const base = (l * s.kvHeads + g) * s.half;
  return Array.from({ length: s.half }, (_, i) => i).sort((a, b) => s.values[base + b] - s.values[base + a] || a - b);
}

/** ranks[l, g, i]: position of pair i in its head's descending order ([layers × kvHeads × half]). */
export function rankPairs(s: PairScores): Int32Array {
  check(s);
  const ranks = new Int32Array(s.values.length);
  for (let l = 0; l < s.layers; l++) {
    for (let g = 0; g < s.kvHeads; g++) {
      const base = (l * s.kvHeads + g) * s.half;
      order(s, l, g).forEach((pair, rank) => (ranks[base + pair] = rank));
    }
  }
  return ranks;
}

/** The `count` best pairs of every (layer, KV head), ascending: keptPairs[layer][kvHead]. */
export function topPairs(s: PairScores, count: number): number[][][] {
  check(s);
  if (!Number.isInteger(count) || count < 1 || count > s.half) {
    throw new RopeSelectionError("bad_rope_dims", `cannot keep ${count} of ${s.half} frequency pairs`);
  }
  return Array.from({ length: s.layers }, (_, l) =>
    Array.from({ length: s.kvHeads }, (_, g) =>
      order(s, l, g)
        .slice(0, count)
        .sort((a, b) => a - b),
    ),
  );
}
