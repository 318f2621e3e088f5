// Truncated SVD W ≈ U_r·diag(σ)·V_rᵀ through the eigen-decomposition of the small Gram matrix (W·Wᵀ for a wide W,
// Wᵀ·W for a tall one), all in f64. Precision trade-off: squaring makes σ_i lose relative accuracy once
// σ_i/σ_1 ≲ √ε ≈ 1e-8, and V_r rows (formed as Σ⁻¹U_rᵀW) lose orthogonality ∝ ε·σ_1²/σ_i². U_r itself is accurate to
// ε‖W‖²/gap, so U_r·U_rᵀ·W — the rank-r projection every factorisation here uses — keeps the Eckart–Young error.
// Weight matrices truncated at a few hundred of ~1000 singular values sit far above that limit.
import { defaultKernels } from "./default-kernels.ts";
import { eigh } from "./eigh.ts";
import { LinalgError } from "./errors.ts";
import type { LinalgKernels } from "./kernels.ts";
import { matmulAtB, gramAAt, matmul } from "./matmul.ts";
import { matrix, sliceCols, transpose, type Matrix } from "./matrix.ts";

export interface TruncatedSvd {
  /** m×r, orthonormal columns. */
  readonly u: Matrix;
  /** r singular values, descending. */
  readonly s: Float64Array;
  /** r×n; rows orthonormal where σ_i > 4·√(m·ε)·σ_1, zero rows below (numerically zero in the Gram route). */
  readonly vt: Matrix;
  /** All min(m, n) singular values (from the Gram spectrum), descending; their squares give Eckart–Young errors. */
  readonly allSingularValues: Float64Array;
}

/** Rank-`rank` SVD of any m×n matrix (rank ≤ min(m, n)). */
export function truncatedSvd(w: Matrix, rank: number, kernels: LinalgKernels = defaultKernels()): TruncatedSvd {
  const small = Math.min(w.rows, w.cols);
  if (!Number.isInteger(rank) || rank < 0 || rank > small) {
    throw new LinalgError("bad_argument", `truncatedSvd: rank ${rank} outside 0..${small} for ${w.rows}×${w.cols}`);
  }
  if (w.rows > w.cols) {
    // Tall: SVD of Wᵀ = V·Σ·Uᵀ, then swap the roles.
    const t = truncatedSvd(transpose(w), rank, kernels);
    return { u: transpose(t.vt), s: t.s, vt: transpose(t.u), allSingularValues: t.allSingularValues };
  }
  const m = w.rows;
  const { values, vectors } = eigh(gramAAt(w, kernels), kernels);
  const all = new Float64Array(m);
  for (let i = 0; i < m; i++) all[i] = Math.sqrt(Math.max(values[i], 0));
  const u = sliceCols(vectors, 0, rank);
  const s = all.slice(0, rank);
  // V_rᵀ = Σ⁻¹·U_rᵀ·W. Gram eigenvalues carry absolute error ~m·ε·σ_1², so σ below ~4·√(m·ε)·σ_1 is rounding noise:
  // its row is set to zero instead of amplified (it contributes < 16·m·ε·σ_1² to W either way).
  const vt = matmulAtB(u, w, kernels);
  const cutoff = 4 * Math.sqrt(m * 2 ** -52) * (all[0] ?? 0);
  for (let i = 0; i < rank; i++) {
    const row = vt.data.subarray(i * w.cols, (i + 1) * w.cols);
    if (s[i] > cutoff) {
      const inv = 1 / s[i];
      for (let j = 0; j < row.length; j++) row[j] *= inv;
    } else row.fill(0);
  }
  return { u, s, vt, allSingularValues: all };
}

/** U·diag(s)·Vᵀ (for tests and error checks). */
export function reconstructSvd(svd: TruncatedSvd, kernels: LinalgKernels = defaultKernels()): Matrix {
  const us = matrix(svd.u.rows, svd.u.cols, svd.u.data.slice());
  for (let i = 0; i < us.rows; i++) for (let j = 0; j < us.cols; j++) us.data[i * us.cols + j] *= svd.s[j];
  return matmul(us, svd.vt, kernels);
}

