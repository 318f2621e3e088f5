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
