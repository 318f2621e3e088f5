// The per-block linear algebra of MLA attention shared by the CPU reference and the kernel-driven backend
// (docs/method.md §8.3): q / k_rope / latent projections with RoPE, the absorbed queries q̃ᵐ, βᵐ the kernels take, and the
// way back from per-space latent outputs ōᵐ, Pᵐ to head outputs through W_uvᵐ.

import type { MlaAttentionOutput, MlaQueries } from "../../kernels/types.ts";
import type { TokenBlock } from "../attention-backend.ts";
import { linear } from "../ops.ts";
import { rotatePairs } from "../rope.ts";
import { spaceOf, type MlaModelWeights } from "./weights.ts";

export interface BlockProjections {
  /** [count × n_h·d_h]: per token [q_rope of all heads (n_h·r) | q_nope of all heads (n_h·d_c)], RoPE applied. */
  readonly q: Float64Array;
  /** [count × n_kv·r] rotated rope keys. */
  readonly kRope: Float64Array;
  /** [count × D_c] latents, each token through the down projection of its modality's space. */
  readonly latent: Float64Array;
}

/** Projects a block's attention input `x` [count × hidden] of layer `layer`. */
export function projectBlock(model: MlaModelWeights, layer: number, x: Float64Array, block: TokenBlock): BlockProjections {
  const { hiddenSize: d, numHeads: nh, numKvHeads: nkv, headDim: dh } = model.config;
  const w = model.attention[layer];
  const n = block.count;
  const r = model.ropeDims;
  const D = model.dKv * nkv;
  const qDim = nh * dh;
  const group = nh / nkv;
  const q = new Float64Array(n * qDim);
  linear(x, n, d, w.qProj, qDim, w.qBias, q);
  const kRope = new Float64Array(n * nkv * r);
  linear(x, n, d, w.kRProj, nkv * r, w.kRBias, kRope);
  for (let t = 0; t < n; t++) {
    for (let h = 0; h < nh; h++) rotatePairs(q, t * qDim + h * r, w.keptPairs[Math.floor(h / group)], block.rope, t);
    for (let g = 0; g < nkv; g++) rotatePairs(kRope, (t * nkv + g) * r, w.keptPairs[g], block.rope, t);
  }
  const latent = new Float64Array(n * D);
  const lat = new Float64Array(D);
  const one = new Float64Array(d);
  for (let t = 0; t < n; t++) {
    one.set(x.subarray(t * d, (t + 1) * d));
    linear(one, 1, d, w.spaces[spaceOf(model.latentSpaces, block.modality[t])].downKv, D, null, lat);
    latent.set(lat, t * D);
  }
  return { q, kRope, latent };
}

/** The kernels' inputs for `n` query rows: q_rope, q̃ᵐ = W_ukᵐ[g]ᵀ q_nope and βᵐ = q_nope · b_ukᵐ[g] (f64 sums, f32 out). */
export function absorbedQueries(model: MlaModelWeights, layer: number, q: Float64Array, n: number): MlaQueries {
  const { numHeads: nh, numKvHeads: nkv, headDim: dh } = model.config;
  const w = model.attention[layer];
  const r = model.ropeDims;
  const dc = dh - r;
  const D = model.dKv * nkv;
  const qDim = nh * dh;
  const group = nh / nkv;
  const qRope = new Float32Array(n * nh * r);
  const qLatent = w.spaces.map(() => new Float32Array(n * nh * D));
  const keyBias = w.spaces.map(() => new Float32Array(n * nh));
  const acc = new Float64Array(D);
  for (let t = 0; t < n; t++) {
    for (let h = 0; h < nh; h++) {
      const qh = t * nh + h;
      for (let e = 0; e < r; e++) qRope[qh * r + e] = q[t * qDim + h * r + e];
      const g = Math.floor(h / group);
      const qn = t * qDim + nh * r + h * dc;
      w.spaces.forEach((sp, m) => {
        acc.fill(0);
        let b = 0;
        for (let e = 0; e < dc; e++) {
          const qe = q[qn + e];
          const uo = (g * dc + e) * D;
          for (let i = 0; i < D; i++) acc[i] += qe * sp.upK[uo + i];
          if (sp.upKBias !== null) b += qe * sp.upKBias[g * dc + e];
        }
        qLatent[m].set(acc, qh * D);
        keyBias[m][qh] = b;
      });
    }
  }
  return { queryCount: n, qRope, qLatent, keyBias };
}

/** o[t, h] = Σ_m W_uvᵐ[g] ōᵐ[t, h] + Pᵐ[t, h] b_uvᵐ[g], written to `o` [n × n_h·d_h]. */
export function headOutputs(model: MlaModelWeights, layer: number, out: MlaAttentionOutput, o: Float64Array): void {
  const { numHeads: nh, numKvHeads: nkv, headDim: dh } = model.config;
  const w = model.attention[layer];
  const D = model.dKv * nkv;
  const group = nh / nkv;
  const n = out.queryCount;
  o.fill(0, 0, n * nh * dh);
  for (let t = 0; t < n; t++) {
    for (let h = 0; h < nh; h++) {
      const qh = t * nh + h;
      const g = Math.floor(h / group);
      const oo = qh * dh;
      w.spaces.forEach((sp, m) => {
        const ob = out.latentOut[m];
        const p = out.mass[m][qh];
        for (let e = 0; e < dh; e++) {
          const row = g * dh + e;
          const uo = row * D;
          let a = sp.upVBias === null ? 0 : p * sp.upVBias[row];
          for (let i = 0; i < D; i++) a += sp.upV[uo + i] * ob[qh * D + i];
          o[oo + e] += a;
        }
      });
    }
  }
}
