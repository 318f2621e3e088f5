// f64 references of RMSNorm, SwiGLU and the residual add (the formulas of Qwen2/Llama, model/ops.ts).

/** x / sqrt(mean(x²) + eps) · w per row, in f64 (no overflow for any finite f32 input). */
export function rmsNormRef(x: ArrayLike<number>, rows: number, dim: number, weight: ArrayLike<number>, eps: number): Float64Array {
  const out = new Float64Array(rows * dim);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let k = 0; k < dim; k++) ss += x[r * dim + k] ** 2;
    const inv = 1 / Math.sqrt(ss / dim + eps);
    for (let k = 0; k < dim; k++) out[r * dim + k] = x[r * dim + k] * inv * weight[k];
  }
  return out;
}

/** silu(g)·u element-wise in f64. */
export function swigluRef(gate: ArrayLike<number>, up: ArrayLike<number>): Float64Array {
  return Float64Array.from({ length: gate.length }, (_, i) => (gate[i] / (1 + Math.exp(-gate[i]))) * up[i]);
}

/** erf in f64 to ~1e-16 (Abramowitz–Stegun 7.1.5 series below 3, the continued fraction of erfc above): independent of
 * the Chebyshev fit the GPU kernel and the CPU tower use. */
export function erfRef(x: number): number {
  const z = Math.abs(x);
  let r: number;
  if (z < 3) {
    // erf z = 2/√π Σ (−1)ⁿ z^(2n+1) / (n! (2n+1))
    let term = z;
    let sum = z;
    for (let n = 1; n < 200; n++) {
      term *= (-z * z) / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    r = (2 / Math.sqrt(Math.PI)) * sum;
  } else {
    // erfc z = e^(−z²)/√π · 1/(z + 1/2/(z + 1/(z + 3/2/(z + 2/(z + …))))), evaluated bottom-up.
    let f = z;
    for (let n = 60; n >= 1; n--) f = z + n / 2 / f;
    r = 1 - Math.exp(-z * z) / Math.sqrt(Math.PI) / f;
  }
  return x < 0 ? -r : r;
}

/** Exact GELU ½x(1 + erf(x/√2)) element-wise in f64. */
export function geluRef(x: ArrayLike<number>): Float64Array {
  return Float64Array.from({ length: x.length }, (_, i) => 0.5 * x[i] * (1 + erfRef(x[i] * Math.SQRT1_2)));
}
