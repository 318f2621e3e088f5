// SVD_joint (docs/method.md §5, the default): one truncated SVD of W_kv = [W_k,nope ; W_v] over all KV heads at once, so a
// token has one latent shared by every head and by K and V. As in the released code, down = V_rᵀ (orthonormal rows)
// and up = U_r·Σ_r, split by rows into up_k and up_v.
import { defaultKernels } from "../linalg/default-kernels.ts";
import type { LinalgKernels } from "../linalg/kernels.ts";
import { matrix, sliceRows, stackRows, type Matrix } from "../linalg/matrix.ts";
import { truncatedSvd } from "../linalg/svd.ts";
import { checkKvWeights, checkRank, type KvDims, type LowRankKv } from "./types.ts";

export interface SvdJointResult extends LowRankKv {
  /** All singular values of W_kv, descending (Σ of the discarded squares is the Frobenius error). */
  readonly singularValues: Float64Array;
}

export function svdJoint(
  wkNope: Matrix, wv: Matrix, dims: KvDims, rank: number, kernels: LinalgKernels = defaultKernels(),
): SvdJointResult {
  checkKvWeights("svdJoint", wkNope, wv, dims);
  const w = stackRows(wkNope, wv);
  checkRank("svdJoint", rank, Math.min(w.rows, w.cols));
  const svd = truncatedSvd(w, rank, kernels);
  const up = scaleColumns(svd.u, svd.s);
  const kRows = wkNope.rows;
  return {
    down: svd.vt,
    upK: sliceRows(up, 0, kRows),
    upV: sliceRows(up, kRows, w.rows),
    singularValues: svd.allSingularValues,
  };
}

/** M·diag(s) as a new matrix. */
export function scaleColumns(m: Matrix, s: Float64Array): Matrix {
  const out = matrix(m.rows, m.cols, m.data.slice());
  for (let i = 0; i < m.rows; i++) for (let j = 0; j < m.cols; j++) out.data[i * m.cols + j] *= s[j];
  return out;
}

/** diag(s)·M as a new matrix. */
export function scaleRows(m: Matrix, s: Float64Array): Matrix {
  const out = matrix(m.rows, m.cols, m.data.slice());
  for (let i = 0; i < m.rows; i++) for (let j = 0; j < m.cols; j++) out.data[i * m.cols + j] *= s[i];
  return out;
}
