// f64 reference of absorbed MLA attention (docs/method.md §8.3), hand-written and independent of the WGSL:
// s_j = (q_rope·k_rope[g(h), j] + q̃^{m(j)}·c_j + β^{m(j)}) / √d_h, softmax over visible tokens,
// ōᵐ = Σ_{m(j)=m} p_j c_j, Pᵐ = Σ_{m(j)=m} p_j. Query i of n_q sees tokens [0, L − n_q + i].
import type { MlaGeometry } from "./geometry.ts";
import type { MlaAttentionOutput, MlaQueries } from "./types.ts";

/** A cache as dense rows (already dequantized). */
export interface DenseCache {
  readonly length: number;
  /** [length][D_c] */
  readonly latent: ArrayLike<number>;
  /** [length][n_kv·r] */
  readonly rope: ArrayLike<number>;
  /** [length], 0 text / 1 image (ignored with one space). */
  readonly modality: ArrayLike<number>;
}

export function mlaAttentionRef(g: MlaGeometry, cache: DenseCache, q: MlaQueries): MlaAttentionOutput<Float64Array> {
  const { heads, kvHeads, ropeDims: r, latentWidth: dc, spaces } = g;
  const n = q.queryCount;
  const rw = kvHeads * r;
  const scale = 1 / Math.sqrt(g.headDim);
  const latentOut = Array.from({ length: spaces }, () => new Float64Array(n * heads * dc));
  const mass = Array.from({ length: spaces }, () => new Float64Array(n * heads));
  const scores = new Float64Array(cache.length);
  for (let i = 0; i < n; i++) {
    const visible = cache.length - n + i + 1;
    for (let h = 0; h < heads; h++) {
      const kv = Math.floor(h / (heads / kvHeads));
      let max = -Infinity;
      for (let j = 0; j < visible; j++) {
        const m = spaces === 2 ? cache.modality[j] : 0;
        let s = q.keyBias[m][i * heads + h];
        for (let k = 0; k < r; k++) s += q.qRope[(i * heads + h) * r + k] * cache.rope[j * rw + kv * r + k];
        const ql = q.qLatent[m];
        for (let c = 0; c < dc; c++) s += ql[(i * heads + h) * dc + c] * cache.latent[j * dc + c];
        scores[j] = s * scale;
        if (scores[j] > max) max = scores[j];
      }
      let z = 0;
      for (let j = 0; j < visible; j++) {
        scores[j] = Math.exp(scores[j] - max);
        z += scores[j];
      }
      for (let j = 0; j < visible; j++) {
        const m = spaces === 2 ? cache.modality[j] : 0;
        const p = scores[j] / z;
        mass[m][i * heads + h] += p;
        const o = latentOut[m];
        const base = (i * heads + h) * dc;
        for (let c = 0; c < dc; c++) o[base + c] += p * cache.latent[j * dc + c];
      }
    }
  }
  return { queryCount: n, latentOut, mass };
}
