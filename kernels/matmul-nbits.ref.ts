// f64 references of the linear and embedding kernels, written from the MatMulNBits layout alone (matmul-nbits.ts head
// comment): W[n, k] = (code − zero)·scale with code k of row n at byte (n·k_blocks + ⌊k/block⌋)·blob + (k mod block)·bits/8,
// low bits first; the zero point 2^(bits−1) when absent.
import { f16ToF32 } from "../format/codec/fp16.ts";
import { kBlocksOf, zeroPointStride, type LinearWeights } from "./matmul-nbits.ts";

/** Row-major [N, K] f64 values of any weight format. */
export function dequantizeWeightsRef(w: LinearWeights): Float64Array {
  const out = new Float64Array(w.n * w.k);
  if (w.kind === "f32") {
    out.set(w.data);
    return out;
  }
  if (w.kind === "f16") {
    for (let i = 0; i < out.length; i++) out[i] = f16ToF32(w.data[i]);
    return out;
  }
  const kb = kBlocksOf(w.k, w.block);
  const blob = (w.block * w.bits) / 8;
  const zs = zeroPointStride(w.bits, kb);
  for (let n = 0; n < w.n; n++) {
    for (let k = 0; k < w.k; k++) {
      const b = Math.floor(k / w.block);
      const kin = k % w.block;
      let code: number;
      if (w.bits === 8) code = w.data[(n * kb + b) * blob + kin];
      else {
        const byte = w.data[(n * kb + b) * blob + (kin >> 1)];
        code = kin % 2 === 0 ? byte & 15 : byte >> 4;
      }
      let zero = 2 ** (w.bits - 1);
      if (w.zeroPoints) {
        if (w.bits === 8) zero = w.zeroPoints[n * zs + b];
        else {
          const byte = w.zeroPoints[n * zs + (b >> 1)];
          zero = b % 2 === 0 ? byte & 15 : byte >> 4;
        }
      }
      out[n * w.k + k] = (code - zero) * f16ToF32(w.scales[n * kb + b]);
    }
  }
  return out;
}

/** y[M, N] = x[M, K]·Wᵀ + bias in f64. */
export function linearRef(w: LinearWeights, x: ArrayLike<number>, m: number, bias?: ArrayLike<number>): Float64Array {
  const dense = dequantizeWeightsRef(w);
  const y = new Float64Array(m * w.n);
  for (let r = 0; r < m; r++) {
    for (let n = 0; n < w.n; n++) {
      let s = 0;
      for (let k = 0; k < w.k; k++) s += x[r * w.k + k] * dense[n * w.k + k];
      y[r * w.n + n] = bias ? s + bias[n] : s;
    }
  }
  return y;
}

/** Rows `ids` of the table (N = vocabulary, K = hidden) in f64. */
export function embeddingRef(table: LinearWeights, ids: ArrayLike<number>): Float64Array {
  const dense = dequantizeWeightsRef(table);
  const out = new Float64Array(ids.length * table.k);
  for (let t = 0; t < ids.length; t++) out.set(dense.subarray(ids[t] * table.k, (ids[t] + 1) * table.k), t * table.k);
  return out;
}
