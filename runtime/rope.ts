// Rotary embedding in the HF rotate_half convention: pair i = dims (i, i + d_h/2), inv_freq_i = θ^(−2i/d_h).
// M-RoPE (Qwen2.5-VL) drives pair i by stream t, h or w according to mrope_section (docs/method.md §2.1).

/** inv_freq_i = θ^(−2i/d_h) for the d_h/2 pairs. */
export function ropeInvFreq(headDim: number, theta: number): Float64Array {
  const half = headDim / 2;
  const f = new Float64Array(half);
  for (let i = 0; i < half; i++) f[i] = Math.pow(theta, (-2 * i) / headDim);
  return f;
}

/** Position stream (0 = t, 1 = h, 2 = w) of each pair; all 0 for 1-D RoPE. */
export function pairStreams(headDim: number, mropeSection: readonly [number, number, number] | null): Uint8Array {
  const half = headDim / 2;
  const s = new Uint8Array(half);
  if (mropeSection === null) return s;
  for (let i = 0; i < half; i++) s[i] = i < mropeSection[0] ? 0 : i < mropeSection[0] + mropeSection[1] ? 1 : 2;
  return s;
}

/** Angle tables of a token block: cos/sin[t·half + i] = cos/sin(pos_{stream(i)}[t] · inv_freq_i). */
export interface RopeTables {
  readonly half: number;
  readonly cos: Float64Array;
  readonly sin: Float64Array;
}

/** `positions` is stream-major [3 × count] (t row, h row, w row), as Qwen2.5-VL's position_ids. */
export function ropeTables(positions: Int32Array, count: number, invFreq: Float64Array, streams: Uint8Array): RopeTables {
  const half = invFreq.length;
  const cos = new Float64Array(count * half);
  const sin = new Float64Array(count * half);
  for (let t = 0; t < count; t++) {
    for (let i = 0; i < half; i++) {
      const a = positions[streams[i] * count + t] * invFreq[i];
      cos[t * half + i] = Math.cos(a);
      sin[t * half + i] = Math.sin(a);
    }
  }
  return { half, cos, sin };
}

/**
 * Rotates the vector v[off .. off+2k) whose halves pair j with j+k, where sub-pair j is original pair pairs[j]
 * (all pairs 0..half−1 for a full head; the kept pairs for an MLA rope slice, docs/method.md §3.4).
 */
export function rotatePairs(
  v: Float64Array,
  off: number,
  pairs: Int32Array,
  tables: RopeTables,
  token: number,
): void {
  const k = pairs.length;
  const base = token * tables.half;
  for (let j = 0; j < k; j++) {
    const p = pairs[j];
    const c = tables.cos[base + p];
    const s = tables.sin[base + p];
    const a = v[off + j];
    const b = v[off + j + k];
    v[off + j] = a * c - b * s;
    v[off + j + k] = b * c + a * s;
  }
}

/** Pairs 0..n−1, the identity selection of a full head. */
export function allPairs(n: number): Int32Array {
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  return p;
}
