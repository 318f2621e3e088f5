// Dense CPU kernels of the reference runtime: f32 weights, f64 activations and accumulation, no allocation per call.

/**
 * out[r, o] = bias[o] + Σ_k w[o, k] · x[r, k] for `rows` rows. `w` is row-major [outDim × inDim] (PyTorch Linear layout).
 */
export function linear(
  x: Float64Array,
  rows: number,
  inDim: number,
  w: Float32Array,
  outDim: number,
  bias: Float32Array | null,
  out: Float64Array,
): void {
  for (let r = 0; r < rows; r++) {
    const xo = r * inDim;
    const oo = r * outDim;
    const tail = inDim & ~3;
    for (let o = 0; o < outDim; o++) {
      const wo = o * inDim;
      // four partial sums: breaks the add dependency chain (about 2× faster in V8), still f64
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      let k = 0;
      for (; k < tail; k += 4) {
        s0 += w[wo + k] * x[xo + k];
        s1 += w[wo + k + 1] * x[xo + k + 1];
        s2 += w[wo + k + 2] * x[xo + k + 2];
        s3 += w[wo + k + 3] * x[xo + k + 3];
      }
      for (; k < inDim; k++) s0 += w[wo + k] * x[xo + k];
      const s = s0 + s1 + (s2 + s3);
      out[oo + o] = bias === null ? s : s + bias[o];
    }
  }
}

/** RMSNorm per row: x / sqrt(mean(x²) + eps) · weight (Qwen2 / Llama). */
export function rmsNorm(x: Float64Array, rows: number, dim: number, weight: Float32Array, eps: number, out: Float64Array): void {
  for (let r = 0; r < rows; r++) {
    const o = r * dim;
    let ss = 0;
    for (let k = 0; k < dim; k++) ss += x[o + k] * x[o + k];
    const inv = 1 / Math.sqrt(ss / dim + eps);
    for (let k = 0; k < dim; k++) out[o + k] = x[o + k] * inv * weight[k];
  }
}

/** LayerNorm per row with affine weight and bias (PyTorch, biased variance). */
export function layerNorm(
  x: Float64Array,
  rows: number,
  dim: number,
  weight: Float32Array,
  bias: Float32Array,
  eps: number,
  out: Float64Array,
): void {
  for (let r = 0; r < rows; r++) {
    const o = r * dim;
    let mean = 0;
    for (let k = 0; k < dim; k++) mean += x[o + k];
    mean /= dim;
    let v = 0;
    for (let k = 0; k < dim; k++) v += (x[o + k] - mean) * (x[o + k] - mean);
    const inv = 1 / Math.sqrt(v / dim + eps);
    for (let k = 0; k < dim; k++) out[o + k] = (x[o + k] - mean) * inv * weight[k] + bias[k];
  }
}

/** erf(x) from the Numerical Recipes erfc Chebyshev fit (fractional error < 1.2e-7, below f32 resolution). */
export function erf(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const erfc =
    t *
    Math.exp(
      -z * z -
        1.26551223 +
        t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? 1 - erfc : erfc - 1;
}

/** Exact (erf) GELU in place. */
export function geluInPlace(x: Float64Array, n: number): void {
  for (let i = 0; i < n; i++) x[i] = 0.5 * x[i] * (1 + erf(x[i] * Math.SQRT1_2));
}

/** Softmax of s[0..n) in place, returning nothing; max-subtracted for range. */
export function softmaxInPlace(s: Float64Array, n: number): void {
  let m = -Infinity;
  for (let j = 0; j < n; j++) if (s[j] > m) m = s[j];
  let z = 0;
  for (let j = 0; j < n; j++) {
    const e = Math.exp(s[j] - m);
    s[j] = e;
    z += e;
  }
  const inv = 1 / z;
  for (let j = 0; j < n; j++) s[j] *= inv;
}

/** SwiGLU MLP of one block: down(silu(gate x) ⊙ up x). `gate`/`up` scratch are rows × inter. */
export function swiglu(
  x: Float64Array,
  rows: number,
  hidden: number,
  inter: number,
  wGate: Float32Array,
  wUp: Float32Array,
  wDown: Float32Array,
  gate: Float64Array,
  up: Float64Array,
  out: Float64Array,
): void {
  linear(x, rows, hidden, wGate, inter, null, gate);
  linear(x, rows, hidden, wUp, inter, null, up);
  const n = rows * inter;
  for (let i = 0; i < n; i++) {
    const g = gate[i];
    gate[i] = (g / (1 + Math.exp(-g))) * up[i];
  }
  linear(gate, rows, inter, wDown, hidden, null, out);
}
