// f64 reference of the vision tower's segment attention (kernels/vision-attention.ts): non-causal multi-head attention
// where each row attends to every row of its own segment (a window of the window-attention blocks, or a frame of the
// full-attention blocks), softmax(q·kᵀ/√d_h)·v per head. q and k are already rotated.

/** Where q, k and v sit: row r, head h, element e at base + r·stride + h·headDim + e. */
export interface VisionAttentionLayout {
  readonly rows: number;
  readonly heads: number;
  readonly headDim: number;
  readonly qStride: number;
  readonly qOffset: number;
  readonly kStride: number;
  readonly kOffset: number;
  readonly vStride: number;
  readonly vOffset: number;
}

/**
 * cu_seqlens → per-row [start, end) bounds ([rows × 2] u32): segment s covers rows [cu[s], cu[s+1]). Throws RangeError
 * when cu does not start at 0, is not strictly increasing or does not end at `rows`.
 */
export function segmentBounds(cu: ArrayLike<number>, rows: number): Uint32Array {
  if (cu.length < 2 || cu[0] !== 0 || cu[cu.length - 1] !== rows) throw new RangeError(`segments must run from 0 to ${rows}`);
  const out = new Uint32Array(rows * 2);
  for (let s = 1; s < cu.length; s++) {
    if (!(cu[s] > cu[s - 1])) throw new RangeError(`segment ${s - 1} [${cu[s - 1]}, ${cu[s]}) is empty or reversed`);
    for (let r = cu[s - 1]; r < cu[s]; r++) {
      out[2 * r] = cu[s - 1];
      out[2 * r + 1] = cu[s];
    }
  }
  return out;
}

/** out [rows × heads·headDim] (row-major) in f64. */
export function visionAttentionRef(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  l: VisionAttentionLayout,
  cu: ArrayLike<number>,
): Float64Array {
  const { rows, heads, headDim: d } = l;
  const bounds = segmentBounds(cu, rows);
  const out = new Float64Array(rows * heads * d);
  const scale = 1 / Math.sqrt(d);
  for (let r = 0; r < rows; r++) {
    const a = bounds[2 * r];
    const b = bounds[2 * r + 1];
    const s = new Float64Array(b - a);
    for (let h = 0; h < heads; h++) {
      const qo = l.qOffset + r * l.qStride + h * d;
      let m = -Infinity;
      for (let j = a; j < b; j++) {
        const ko = l.kOffset + j * l.kStride + h * d;
        let dot = 0;
        for (let e = 0; e < d; e++) dot += q[qo + e] * k[ko + e];
        s[j - a] = dot * scale;
        if (s[j - a] > m) m = s[j - a];
      }
      let z = 0;
      for (let j = 0; j < b - a; j++) {
        s[j] = Math.exp(s[j] - m);
        z += s[j];
      }
      const oo = r * heads * d + h * d;
      for (let j = a; j < b; j++) {
        const p = s[j - a] / z;
        const vo = l.vOffset + j * l.vStride + h * d;
        for (let e = 0; e < d; e++) out[oo + e] += p * v[vo + e];
      }
    }
  }
  return out;
}
