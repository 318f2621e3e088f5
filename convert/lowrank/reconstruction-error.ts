// Activation-weighted reconstruction error E‖(W − up·down)x‖² = tr(R·S·Rᵀ), R = W − up·down, computed exactly
// from the second moment S = E[x·xᵀ] instead of from samples.
import { defaultKernels } from "../linalg/default-kernels.ts";
import type { LinalgKernels } from "../linalg/kernels.ts";
import { matmul, matmulABt } from "../linalg/matmul.ts";
import { stackRows, subtract, type Matrix } from "../linalg/matrix.ts";
import { LowRankError } from "./errors.ts";
import type { LowRankKv } from "./types.ts";

export function reconstructionError(
  w: Matrix, up: Matrix, down: Matrix, secondMoment: Matrix, kernels: LinalgKernels = defaultKernels(),
): number {
  if (up.cols !== down.rows || up.rows !== w.rows || down.cols !== w.cols) {
    throw new LowRankError(
      "shape_mismatch",
      `reconstructionError: W ${w.rows}×${w.cols}, up ${up.rows}×${up.cols}, down ${down.rows}×${down.cols}`,
    );
  }
  if (secondMoment.rows !== w.cols || secondMoment.cols !== w.cols) {
    throw new LowRankError("shape_mismatch", `reconstructionError: S is ${secondMoment.rows}×${secondMoment.cols}, W has ${w.cols} columns`);
  }
  const r = subtract(w, matmul(up, down, kernels));
  const rs = matmulABt(r, secondMoment, kernels); // R·S (S symmetric)
  let total = 0;
  for (let i = 0; i < r.data.length; i++) total += rs.data[i] * r.data[i];
  return total;
}

/** reconstructionError of a LowRankKv against [W_k,nope ; W_v]. */
export function kvReconstructionError(
  wkNope: Matrix, wv: Matrix, kv: LowRankKv, secondMoment: Matrix, kernels: LinalgKernels = defaultKernels(),
): number {
  return reconstructionError(stackRows(wkNope, wv), stackRows(kv.upK, kv.upV), kv.down, secondMoment, kernels);
}
