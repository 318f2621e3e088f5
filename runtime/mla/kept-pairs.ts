// Kept RoPE frequency pairs per (layer, KV head) and the row selections they induce (docs/method.md §3, §4).
// Pair i is dims (i, i + d_h/2) (HF rotate_half convention).

import { keptPairsOfRanks } from "../../checkpoint/families/mha2mla_released.ts";
import { MlaError } from "../../format/errors.ts";
export class KeptPairsError extends MlaError<"bad_pairs" | "bad_ranks"> {
  override readonly name = "KeptPairsError";
  constructor(code: "bad_pairs" | "bad_ranks", message: string) {
    super(code, message);
  }
}

/** keptPairs[layer][kvHead] = ascending pair indices in [0, d_h/2); the same count for every head. */
export type KeptPairs = readonly (readonly number[])[][];

/** Checks shape, range, order, uniqueness and a uniform count; returns the pairs per head (r/2). */
export function validateKeptPairs(kept: KeptPairs, layers: number, kvHeads: number, headDim: number): number {
  const half = headDim / 2;
  if (kept.length !== layers) throw new KeptPairsError("bad_pairs", `kept pairs cover ${kept.length} layers, model has ${layers}`);
  let count = -1;
  for (let l = 0; l < layers; l++) {
    if (kept[l].length !== kvHeads) {
      throw new KeptPairsError("bad_pairs", `layer ${l}: kept pairs for ${kept[l].length} KV heads, model has ${kvHeads}`);
    }
    for (let g = 0; g < kvHeads; g++) {
      const p = kept[l][g];
      if (count === -1) count = p.length;
      if (p.length !== count) {
        throw new KeptPairsError("bad_pairs", `layer ${l} head ${g}: keeps ${p.length} pairs, other heads keep ${count}`);
      }
      for (let j = 0; j < p.length; j++) {
        if (!Number.isInteger(p[j]) || p[j] < 0 || p[j] >= half) {
          throw new KeptPairsError("bad_pairs", `layer ${l} head ${g}: pair ${p[j]} is outside [0, ${half})`);
        }
        if (j > 0 && p[j] <= p[j - 1]) {
          throw new KeptPairsError("bad_pairs", `layer ${l} head ${g}: pairs must be strictly ascending, got [${p.join(", ")}]`);
        }
      }
    }
  }
  return count;
}

/** Every pair kept, in every layer and head: MLA with this and full rank equals the original model. */
export function allPairsKept(layers: number, kvHeads: number, headDim: number): number[][][] {
  const all = Array.from({ length: headDim / 2 }, (_, i) => i);
  return Array.from({ length: layers }, () => Array.from({ length: kvHeads }, () => [...all]));
}

/** Dims of one head kept for RoPE, ascending: [first-half picks | second-half picks]. */
export function keptDims(pairs: readonly number[], headDim: number): number[] {
  return [...pairs, ...pairs.map((p) => p + headDim / 2)];
}

/** Dims of one head that become NoPE, ascending. */
export function nopeDims(pairs: readonly number[], headDim: number): number[] {
  const kept = new Set(keptDims(pairs, headDim));
  const out: number[] = [];
  for (let e = 0; e < headDim; e++) if (!kept.has(e)) out.push(e);
  return out;
}

/** Original k_proj rows of the rope key (n_kv·r, head-major) and of the NoPE key (n_kv·d_c), docs/method.md §4 steps 3–4. */
export function keyRowSelection(pairs: readonly (readonly number[])[], headDim: number): { rope: Int32Array; nope: Int32Array } {
  const rope: number[] = [];
  const nope: number[] = [];
  pairs.forEach((p, g) => {
    for (const e of keptDims(p, headDim)) rope.push(g * headDim + e);
    for (const e of nopeDims(p, headDim)) nope.push(g * headDim + e);
  });
  return { rope: Int32Array.from(rope), nope: Int32Array.from(nope) };
}

/**
 * The q_proj row permutation π (docs/method.md §4 step 2): all heads' kept rows (head-major, ascending) then all heads'
 * NoPE rows. Query head h uses the pairs of its KV group ⌊h / G⌋.
 */
export function queryRowPermutation(pairs: readonly (readonly number[])[], numHeads: number, headDim: number): Int32Array {
  const group = numHeads / pairs.length;
  const rope: number[] = [];
  const nope: number[] = [];
  for (let h = 0; h < numHeads; h++) {
    const p = pairs[Math.floor(h / group)];
    for (const e of keptDims(p, headDim)) rope.push(h * headDim + e);
    for (const e of nopeDims(p, headDim)) nope.push(h * headDim + e);
  }
  return Int32Array.from([...rope, ...nope]);
}

/**
 * Kept pairs from a released rank tensor (`mkl/<model>-ranks.pth`, docs/method.md §3.3): `ranks` is [L × n_kv × w] with
 * w = d_h (both halves equal) or d_h/2; pair i is kept when rank < ropeDims/2.
 */
export function keptPairsFromRanks(
  ranks: ArrayLike<number>,
  layers: number,
  kvHeads: number,
  headDim: number,
  ropeDims: number,
): number[][][] {
  const half = headDim / 2;
  const width = ranks.length / (layers * kvHeads);
  if (width !== headDim && width !== half) {
    throw new KeptPairsError("bad_ranks", `rank tensor has ${ranks.length} values; expected ${layers}×${kvHeads}×${headDim} or ×${half}`);
  }
  const r = ropeDims / 2;
  const out: number[][][] = [];
  for (let l = 0; l < layers; l++) {
    const heads: number[][] = [];
    for (let g = 0; g < kvHeads; g++) {
      const base = (l * kvHeads + g) * width;
      const kept = keptPairsOfRanks(ranks, base, half, ropeDims);
      if (kept.length !== r) {
        throw new KeptPairsError("bad_ranks", `layer ${l} head ${g}: ${kept.length} pairs have rank < ${r}; ranks must be a permutation`);
      }
      heads.push(kept);
    }
    out.push(heads);
  }
  return out;
}

/** Inverse of keptPairsFromRanks for writing a rank tensor [L × n_kv × d_h]: kept pairs get ranks 0..r−1 in order. */
export function ranksFromKeptPairs(kept: KeptPairs, headDim: number): Int32Array {
  const half = headDim / 2;
  const L = kept.length;
  const nkv = kept[0].length;
  const out = new Int32Array(L * nkv * headDim);
  for (let l = 0; l < L; l++) {
    for (let g = 0; g < nkv; g++) {
      const base = (l * nkv + g) * headDim;
      const p = kept[l][g];
      const set = new Set(p);
      let next = p.length;
      for (let i = 0; i < half; i++) {
        const rank = set.has(i) ? p.indexOf(i) : next++;
        out[base + i] = rank;
        out[base + half + i] = rank;
      }
    }
  }
  return out;
}
