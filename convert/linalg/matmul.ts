// Dense products on f64 row-major matrices: A·B, A·Bᵀ, Aᵀ·A, A·Aᵀ and the sandwich A·S·Aᵀ (S symmetric). All go
// through the kernels' blocked gemmNT; symmetric results compute the lower triangle only and mirror it.
import { defaultKernels } from "./default-kernels.ts";
import { LinalgError } from "./errors.ts";
import type { LinalgKernels } from "./kernels.ts";
import { matrix, symmetrizeFromLower, transpose, type Matrix } from "./matrix.ts";

function gemm(a: Matrix, bRowsK: Matrix, lower: boolean, kernels: LinalgKernels): Matrix {
  const out = matrix(a.rows, bRowsK.rows);
  kernels.gemmNT(
    { data: a.data, offset: 0, stride: a.cols },
    { data: bRowsK.data, offset: 0, stride: bRowsK.cols },
    { data: out.data, offset: 0, stride: out.cols },
    a.rows, bRowsK.rows, a.cols, 1, 0, lower ? "lower" : "full",
  );
  return out;
}

/** A·Bᵀ for A m×k and B n×k. */
export function matmulABt(a: Matrix, b: Matrix, kernels: LinalgKernels = defaultKernels()): Matrix {
  if (a.cols !== b.cols) throw new LinalgError("shape_mismatch", `matmulABt: ${a.rows}×${a.cols} · (${b.rows}×${b.cols})ᵀ`);
  return gemm(a, b, false, kernels);
}

/** A·B for A m×k and B k×n. */
export function matmul(a: Matrix, b: Matrix, kernels: LinalgKernels = defaultKernels()): Matrix {
  if (a.cols !== b.rows) throw new LinalgError("shape_mismatch", `matmul: ${a.rows}×${a.cols} · ${b.rows}×${b.cols}`);
  return gemm(a, transpose(b), false, kernels);
}

/** Aᵀ·B for A k×m and B k×n. */
export function matmulAtB(a: Matrix, b: Matrix, kernels: LinalgKernels = defaultKernels()): Matrix {
  if (a.rows !== b.rows) throw new LinalgError("shape_mismatch", `matmulAtB: (${a.rows}×${a.cols})ᵀ · ${b.rows}×${b.cols}`);
  return gemm(transpose(a), transpose(b), false, kernels);
}

/** A·Aᵀ (m×m, exactly symmetric). */
export function gramAAt(a: Matrix, kernels: LinalgKernels = defaultKernels()): Matrix {
  return symmetrizeFromLower(gemm(a, a, true, kernels));
}

/** Aᵀ·A (n×n, exactly symmetric). */
export function gramAtA(a: Matrix, kernels: LinalgKernels = defaultKernels()): Matrix {
  const t = transpose(a);
  return symmetrizeFromLower(gemm(t, t, true, kernels));
}

/** A·S·Aᵀ for symmetric S (d×d) and A m×d: (A·S)·Aᵀ, using Sᵀ = S so no transpose is needed. */
export function sandwich(a: Matrix, s: Matrix, kernels: LinalgKernels = defaultKernels()): Matrix {
  if (s.rows !== s.cols || a.cols !== s.rows) {
    throw new LinalgError("shape_mismatch", `sandwich: A ${a.rows}×${a.cols}, S ${s.rows}×${s.cols}`);
  }
  const as = gemm(a, s, false, kernels);
  return symmetrizeFromLower(gemm(as, a, true, kernels));
}
