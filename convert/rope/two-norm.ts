// 2-norm partial-RoPE scoring (docs/method.md §3.2; MHA2MLA App. A): pairs whose query and key norms are small cannot move
// the score much (Cauchy–Schwarz |⟨q^[i], k^[i]⟩| ≤ ‖q^[i]‖·‖k^[i]‖), so keep the pairs with the largest
// score[l, g, i] = Σ_{h ∈ group g} q̄[l, h, i] · k̄[l, g, i], where q̄, k̄ are mean per-pair 2-norms of the pre-RoPE
// projections over calibration tokens (rotation preserves each pair's norm, so pre-RoPE is exact).

import type { TextModelConfig } from "../../checkpoint/config.ts";
import type { SequenceCapture } from "../calibration/capture.ts";
import type { PairScores } from "./ranking.ts";

/** Mean per-pair norms: q̄ [layers × n_h × half], k̄ [layers × n_kv × half]. */
export interface PairNorms {
  readonly layers: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly half: number;
  readonly q: Float64Array;
  readonly k: Float64Array;
}

/** Averages ‖(v_i, v_{i+half})‖ over each sequence's tokens, then over sequences (the released script's order). */
export function meanPairNorms(captures: readonly SequenceCapture[], config: TextModelConfig): PairNorms {
  const { numLayers: L, numHeads: nh, numKvHeads: nkv, headDim: dh } = config;
  const half = dh / 2;
  const q = new Float64Array(L * nh * half);
  const k = new Float64Array(L * nkv * half);
  const accumulate = (src: Float64Array, T: number, heads: number, out: Float64Array, base: number, weight: number) => {
    for (let t = 0; t < T; t++) {
      for (let h = 0; h < heads; h++) {
        const o = t * heads * dh + h * dh;
        for (let i = 0; i < half; i++) out[base + h * half + i] += (weight / T) * Math.hypot(src[o + i], src[o + i + half]);
      }
    }
  };
  const w = 1 / captures.length;
  for (const c of captures) {
    for (let l = 0; l < L; l++) {
      accumulate(c.layers[l].q, c.length, nh, q, l * nh * half, w);
      accumulate(c.layers[l].k, c.length, nkv, k, l * nkv * half, w);
    }
  }
  return { layers: L, heads: nh, kvHeads: nkv, half, q, k };
}

/** score[l, g, i] = Σ_{h ∈ g} q̄[l, h, i] · k̄[l, g, i] (the code sums where the paper averages: same ranking). */
export function twoNormScores(n: PairNorms): PairScores {
  const { layers: L, heads: nh, kvHeads: nkv, half } = n;
  const group = nh / nkv;
  const values = new Float64Array(L * nkv * half);
  for (let l = 0; l < L; l++) {
    for (let h = 0; h < nh; h++) {
      const g = Math.floor(h / group);
      for (let i = 0; i < half; i++) {
        values[(l * nkv + g) * half + i] += n.q[(l * nh + h) * half + i] * n.k[(l * nkv + g) * half + i];
      }
    }
  }
  return { layers: L, kvHeads: nkv, half, values };
}
