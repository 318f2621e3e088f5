// Largest eigenvalue of a symmetric matrix by Lanczos with full reorthogonalisation: a handful of O(d²) matrix–vector
// products give λ_max to near machine precision (the extreme Ritz value converges far faster than power iteration),
// which is all damping needs — a full eigen-decomposition of a 3584² second moment would be wasted work.
import { eigh } from "./eigh.ts";
import { LinalgError } from "./errors.ts";
import { typescriptKernels } from "./kernels-ts.ts";
import { matrix, type Matrix } from "./matrix.ts";

/**
 * λ_max of symmetric `a`, converged when the top Ritz value moves by < `tolerance` relatively between steps. The Ritz
 * value is a lower bound; the default 1e-8 is far tighter than a damping scale needs.
 */
export function largestEigenvalue(a: Matrix, options: { maxSteps?: number; tolerance?: number } = {}): number {
  const n = a.rows;
  if (n !== a.cols) throw new LinalgError("shape_mismatch", `largestEigenvalue: matrix is ${a.rows}×${a.cols}, not square`);
  if (n === 0) return 0;
  const maxSteps = Math.min(options.maxSteps ?? 60, n);
  const tolerance = options.tolerance ?? 1e-8;
  const data = a.data;
  const basis: Float64Array[] = [];
  const alpha: number[] = [];
  const beta: number[] = [];
  // A deterministic start with all-distinct components, so it is not orthogonal to the top eigenvector in practice.
  let q = new Float64Array(n);
  for (let i = 0; i < n; i++) q[i] = 1 + ((i * 0.6180339887498949) % 1);
  normalize(q);
  let previous = -Infinity;
  for (let step = 0; step < maxSteps; step++) {
    basis.push(q);
    const w = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const row = i * n;
      let s0 = 0, s1 = 0;
      let j = 0;
      for (; j + 1 < n; j += 2) {
        s0 += data[row + j] * q[j];
        s1 += data[row + j + 1] * q[j + 1];
      }
      if (j < n) s0 += data[row + j] * q[j];
      w[i] = s0 + s1;
    }
    alpha.push(dot(w, q));
    // Full reorthogonalisation (twice) keeps the Ritz values free of ghost copies.
    for (let pass = 0; pass < 2; pass++) {
      for (const v of basis) {
        const c = dot(w, v);
        for (let i = 0; i < n; i++) w[i] -= c * v[i];
      }
    }
    const top = topRitzValue(alpha, beta);
    const b = Math.sqrt(dot(w, w));
    if (Math.abs(top - previous) <= tolerance * Math.abs(top) || b <= 1e-14 * Math.abs(top) || step === maxSteps - 1) return top;
    previous = top;
    beta.push(b);
    for (let i = 0; i < n; i++) w[i] /= b;
    q = w;
  }
  return previous;
}

function topRitzValue(alpha: number[], beta: number[]): number {
  const k = alpha.length;
  const t = matrix(k, k);
  for (let i = 0; i < k; i++) {
    t.data[i * k + i] = alpha[i];
    if (i + 1 < k) t.data[i * k + i + 1] = t.data[(i + 1) * k + i] = beta[i];
  }
  return eigh(t, typescriptKernels).values[0];
}

function dot(x: Float64Array, y: Float64Array): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i] * y[i];
  return s;
}

function normalize(x: Float64Array): void {
  const inv = 1 / Math.sqrt(dot(x, x));
  for (let i = 0; i < x.length; i++) x[i] *= inv;
}
