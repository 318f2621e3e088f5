// SVD_split (docs/method.md §5): W_k,nope and W_v factorised separately. The paper gives each half of the latent and the
// released code gives each the full width (2·D_c cached); we take the paper's convention by default — `rank` is the
// TOTAL latent width D_c, keyRank + valueRank = rank — so split and joint compare at equal cache size. The result is
// one block-structured latent c = [c_k ; c_v]: down = [V_kᵀ ; V_vᵀ], up_k = [U_kΣ_k | 0], up_v = [0 | U_vΣ_v].
// The code's convention is svdSplit(wk, wv, dims, 2·D_c, { keyRank: D_c }).
import { defaultKernels } from "../linalg/default-kernels.ts";
import type { LinalgKernels } from "../linalg/kernels.ts";
import { matrix, stackRows, type Matrix } from "../linalg/matrix.ts";
import { truncatedSvd } from "../linalg/svd.ts";
import { LowRankError } from "./errors.ts";
import { scaleColumns } from "./svd-joint.ts";
import { checkKvWeights, checkRank, type KvDims, type LowRankKv } from "./types.ts";

export interface SvdSplitResult extends LowRankKv {
  /** Latent columns [0, keyRank) carry K, [keyRank, rank) carry V. */
  readonly keyRank: number;
  readonly keySingularValues: Float64Array;
  readonly valueSingularValues: Float64Array;
}

export function svdSplit(
  wkNope: Matrix, wv: Matrix, dims: KvDims, rank: number,
  options: { keyRank?: number; kernels?: LinalgKernels } = {},
): SvdSplitResult {
  checkKvWeights("svdSplit", wkNope, wv, dims);
  const kernels = options.kernels ?? defaultKernels();
  const maxK = Math.min(wkNope.rows, wkNope.cols), maxV = Math.min(wv.rows, wv.cols);
  checkRank("svdSplit", rank, maxK + maxV);
  const keyRank = options.keyRank ?? Math.ceil(rank / 2);
  const valueRank = rank - keyRank;
  if (!Number.isInteger(keyRank) || keyRank < 0 || keyRank > maxK || valueRank < 0 || valueRank > maxV) {
    throw new LowRankError(
      "bad_rank",
      `svdSplit: keyRank ${keyRank} / valueRank ${valueRank} must fit 0..${maxK} (W_k,nope) and 0..${maxV} (W_v)`,
    );
  }
  const k = truncatedSvd(wkNope, keyRank, kernels);
  const v = truncatedSvd(wv, valueRank, kernels);
  const upK = matrix(wkNope.rows, rank);
  const upV = matrix(wv.rows, rank);
  placeColumns(upK, scaleColumns(k.u, k.s), 0);
  placeColumns(upV, scaleColumns(v.u, v.s), keyRank);
  return {
    down: stackRows(k.vt, v.vt),
    upK,
    upV,
    keyRank,
    keySingularValues: k.allSingularValues,
    valueSingularValues: v.allSingularValues,
  };
}

function placeColumns(dst: Matrix, src: Matrix, at: number): void {
  for (let i = 0; i < src.rows; i++) dst.data.set(src.data.subarray(i * src.cols, (i + 1) * src.cols), i * dst.cols + at);
}
