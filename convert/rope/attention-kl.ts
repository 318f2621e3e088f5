// The modality-adaptive ("mkl") ranking, reconstructed per docs/method.md §3.3: a pair's importance is how much the
// attention probabilities change when that pair loses its rotation (becomes NoPE on both q and k, exactly what
// conversion does to it). err(l, g, i) = mean over calibration queries — image and text tokens alike — and over the
// query heads of KV group g of KL(P ‖ P'_i). Only pair i's two dims change, so P'_i comes from the original scores by
// the cheap correction s' = s − (rotated contribution of pair i) + (unrotated contribution of pair i).

import type { TextModelConfig } from "../../checkpoint/config.ts";
import type { SequenceCapture } from "../calibration/capture.ts";
import type { RopeTables } from "../../runtime/rope.ts";
import type { PairScores } from "./ranking.ts";

/** One head's pre-RoPE query and key rows of one sequence. */
export interface HeadQk {
  /** [T × d_h], row stride `qStride`, head offset `qOffset`. */
  readonly q: Float64Array;
  readonly qStride: number;
  readonly qOffset: number;
  readonly k: Float64Array;
  readonly kStride: number;
  readonly kOffset: number;
  readonly length: number;
  readonly headDim: number;
}

/**
 * Adds, for every pair i, Σ over queries t of KL(P_t ‖ P'_{t,i}) into `out[i]` (causal attention, scale 1/√d_h), and
 * returns the number of queries (T). Exposed for hand-made tests.
 */
export function accumulatePairKl(head: HeadQk, rope: RopeTables, out: Float64Array): number {
  const { length: T, headDim: dh } = head;
  const half = dh / 2;
  const scale = 1 / Math.sqrt(dh);
  // rotated and plain pair components: [T × half] each for the a (dim i) and b (dim i + half) halves
  const qa = new Float64Array(T * half), qb = new Float64Array(T * half), ka = new Float64Array(T * half), kb = new Float64Array(T * half);
  const qra = new Float64Array(T * half), qrb = new Float64Array(T * half), kra = new Float64Array(T * half), krb = new Float64Array(T * half);
  for (let t = 0; t < T; t++) {
    const qo = t * head.qStride + head.qOffset;
    const ko = t * head.kStride + head.kOffset;
    for (let i = 0; i < half; i++) {
      const c = rope.cos[t * half + i];
      const s = rope.sin[t * half + i];
      const x = t * half + i;
      qa[x] = head.q[qo + i];
      qb[x] = head.q[qo + i + half];
      ka[x] = head.k[ko + i];
      kb[x] = head.k[ko + i + half];
      qra[x] = qa[x] * c - qb[x] * s;
      qrb[x] = qb[x] * c + qa[x] * s;
      kra[x] = ka[x] * c - kb[x] * s;
      krb[x] = kb[x] * c + ka[x] * s;
    }
  }
  const sc = new Float64Array(T);
  const p = new Float64Array(T);
  const delta = new Float64Array(T * half);
  for (let t = 0; t < T; t++) {
    const n = t + 1;
    for (let j = 0; j < n; j++) {
      let dot = 0;
      for (let i = 0; i < half; i++) {
        const a = t * half + i;
        const b = j * half + i;
        const rot = qra[a] * kra[b] + qrb[a] * krb[b];
        dot += rot;
        delta[j * half + i] = (qa[a] * ka[b] + qb[a] * kb[b] - rot) * scale;
      }
      sc[j] = dot * scale;
    }
    let m = -Infinity;
    for (let j = 0; j < n; j++) m = Math.max(m, sc[j]);
    let z = 0;
    for (let j = 0; j < n; j++) z += (p[j] = Math.exp(sc[j] - m));
    for (let j = 0; j < n; j++) p[j] /= z;
    const logZ = m + Math.log(z);
    for (let i = 0; i < half; i++) {
      // KL(P‖P') = Σ_j P_j (s_j − s'_j) + logZ' − logZ, with s'_j = s_j + δ_ij
      let m2 = -Infinity;
      for (let j = 0; j < n; j++) m2 = Math.max(m2, sc[j] + delta[j * half + i]);
      let z2 = 0;
      let cross = 0;
      for (let j = 0; j < n; j++) {
        const d = delta[j * half + i];
        z2 += Math.exp(sc[j] + d - m2);
        cross += p[j] * d;
      }
      out[i] += Math.max(0, m2 + Math.log(z2) - logZ - cross);
    }
  }
  return T;
}

/** err[l, g, i] over all calibration sequences: mean KL per (query, head of the group). */
export function attentionKlScores(captures: readonly SequenceCapture[], config: TextModelConfig, onLayer?: (layer: number) => void): PairScores {
  const { numLayers: L, numHeads: nh, numKvHeads: nkv, headDim: dh } = config;
  const half = dh / 2;
  const group = nh / nkv;
  const values = new Float64Array(L * nkv * half);
  for (let l = 0; l < L; l++) {
    for (let g = 0; g < nkv; g++) {
      const acc = new Float64Array(half);
      let queries = 0;
      for (const c of captures) {
        for (let h = g * group; h < (g + 1) * group; h++) {
          queries += accumulatePairKl(
            { q: c.layers[l].q, qStride: nh * dh, qOffset: h * dh, k: c.layers[l].k, kStride: nkv * dh, kOffset: g * dh, length: c.length, headDim: dh },
            c.rope,
            acc,
          );
        }
      }
      for (let i = 0; i < half; i++) values[(l * nkv + g) * half + i] = acc[i] / queries;
    }
    onLayer?.(l);
  }
  return { layers: L, kvHeads: nkv, half, values };
}
