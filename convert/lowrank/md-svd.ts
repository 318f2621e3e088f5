// MD-SVD (docs/method.md §6): activation-aware truncated SVD of W_kv = [W_k,nope ; W_v] under one modality's calibration
// second moment S. With S' = damped S, the rank-r factorisation minimising E‖(W − up·down)x‖² = tr(R·S'·Rᵀ) is
// up·down = U_r·U_rᵀ·W, U_r = top-r eigenvectors of the small m×m matrix W·S'·Wᵀ (m = n_kv(d_c+d_h), 896 for
// Qwen2.5-VL-7B): it equals §6.2's whitened SVD (D = W·U_s·Λ^{1/2} has left singular vectors U_r and σ_i² = eig_i)
// without inverting Λ^{1/2} or decomposing the d×d S. Only the split of Σ between up and down is a choice:
//   "unit-up"       up = U_r, down = U_rᵀ·W            (fixture reference; default)
//   "sqrt-sigma"    up = U_r·Σ^{1/2}, down = Σ^{−1/2}·U_rᵀ·W  (docs/method.md §6.2: latent variance σ_i on calibration data)
//   "unit-variance" up = U_r·Σ, down = Σ^{−1}·U_rᵀ·W   (latent channels have unit calibration variance)
// Default "unit-up": up has orthonormal columns, so an error δc in the quantized latent reaches K/V with exactly
// ‖δc‖ — latent-space quantization error is output-space error — and down does not depend on the damping scale.
import { defaultKernels } from "../linalg/default-kernels.ts";
import { eigh } from "../linalg/eigh.ts";
import type { LinalgKernels } from "../linalg/kernels.ts";
import { matmulAtB, sandwich } from "../linalg/matmul.ts";
import { sliceCols, sliceRows, stackRows, type Matrix } from "../linalg/matrix.ts";
import { dampSecondMoment, DEFAULT_DAMPING, type Damping } from "./damping.ts";
import { LowRankError } from "./errors.ts";
import { scaleColumns, scaleRows } from "./svd-joint.ts";
import { checkKvWeights, checkRank, type KvDims, type LowRankKv } from "./types.ts";

export type LatentScale = "unit-up" | "sqrt-sigma" | "unit-variance";

export interface MdSvdOptions {
  readonly damping?: Damping;
  readonly latentScale?: LatentScale;
  readonly kernels?: LinalgKernels;
}

export interface MdSvdResult {
  /** rank × d */
  readonly down: Matrix;
  /** m × rank (rows: W_kv's rows) */
  readonly up: Matrix;
  /**
   * All eigenvalues of W·S'·Wᵀ, descending (σ_w,i²). With S' the damped moment, Σ_{i ≥ rank} of them is the minimal
   * E‖(W − up·down)x‖² under S', which the returned factors attain.
   */
  readonly whitenedEigenvalues: Float64Array;
  /** S' as used (S itself when undamped). */
  readonly dampedSecondMoment: Matrix;
  readonly latentScale: LatentScale;
}

export function mdSvd(wKv: Matrix, secondMoment: Matrix, rank: number, options: MdSvdOptions = {}): MdSvdResult {
  const kernels = options.kernels ?? defaultKernels();
  const latentScale = options.latentScale ?? "unit-up";
  if (secondMoment.rows !== wKv.cols || secondMoment.cols !== wKv.cols) {
    throw new LowRankError(
      "shape_mismatch",
      `mdSvd: second moment is ${secondMoment.rows}×${secondMoment.cols}, W_kv has ${wKv.cols} columns`,
    );
  }
  checkRank("mdSvd", rank, Math.min(wKv.rows, wKv.cols));
  const damped = dampSecondMoment(secondMoment, options.damping ?? DEFAULT_DAMPING, kernels).matrix;
  const { values, vectors } = eigh(sandwich(wKv, damped, kernels), kernels);
  const u = sliceCols(vectors, 0, rank);
  const projected = matmulAtB(u, wKv, kernels); // U_rᵀ·W
  let up: Matrix, down: Matrix;
  if (latentScale === "unit-up") {
    up = u;
    down = projected;
  } else {
    const power = latentScale === "sqrt-sigma" ? 0.5 : 1;
    // σ_i = √eig_i; directions with σ_i numerically zero carry nothing and get zero rows/columns, not 1/0.
    const top = Math.sqrt(Math.max(values[0], 0));
    const cutoff = top * 1e-12;
    const upScale = new Float64Array(rank), downScale = new Float64Array(rank);
    for (let i = 0; i < rank; i++) {
      const sigma = Math.sqrt(Math.max(values[i], 0));
      if (sigma > cutoff) {
        upScale[i] = sigma ** power;
        downScale[i] = 1 / upScale[i];
      }
    }
    up = scaleColumns(u, upScale);
    down = scaleRows(projected, downScale);
  }
  return { down, up, whitenedEigenvalues: values, dampedSecondMoment: damped, latentScale };
}

export interface MdSvdKvResult extends LowRankKv {
  readonly whitenedEigenvalues: Float64Array;
  readonly dampedSecondMoment: Matrix;
}

/** mdSvd on [W_k,nope ; W_v] with `up` split into up_k and up_v: one modality's (down, up_k, up_v) of §6.4. */
export function mdSvdKv(
  wkNope: Matrix, wv: Matrix, dims: KvDims, secondMoment: Matrix, rank: number, options: MdSvdOptions = {},
): MdSvdKvResult {
  checkKvWeights("mdSvdKv", wkNope, wv, dims);
  const r = mdSvd(stackRows(wkNope, wv), secondMoment, rank, options);
  return {
    down: r.down,
    upK: sliceRows(r.up, 0, wkNope.rows),
    upV: sliceRows(r.up, wkNope.rows, r.up.rows),
    whitenedEigenvalues: r.whitenedEigenvalues,
    dampedSecondMoment: r.dampedSecondMoment,
  };
}
