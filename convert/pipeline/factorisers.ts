// Low-rank factorisations of [W_k,nope; W_v] (docs/method.md §5–§6) as KvFactorisers for the model runtime's weight surgery,
// over convert/lowrank:
//  - none:  no squeeze, the latent is [k_nope; v] itself (partial RoPE only, VLM stage 1);
//  - joint: SVD_joint, down = V_rᵀ, up = U_r Σ_r (the released code's Σ placement), one latent space;
//  - split: SVD_split with the paper's widths (D_c/2 for K and for V, so the cache matches joint), one latent space;
//  - md:    MD-SVD per modality (two latent spaces): U = top-D_c eigenvectors of W S'_m Wᵀ, down = Uᵀ W, up = U,
//           S'_m = S_m + damping·λ_max(S_m)·I (the fixture README's reference).
// Biases of k_nope and v stay on the up side (the runtime's default when a projection names none).

import { fromFloat32, type Matrix } from "../linalg/matrix.ts";
import { mdSvdKv } from "../lowrank/md-svd.ts";
import { svdJoint } from "../lowrank/svd-joint.ts";
import { svdSplit } from "../lowrank/svd-split.ts";
import type { KvDims, LowRankKv } from "../lowrank/types.ts";
import { fullRankFactoriser, type FactorProjection, type KvFactorInput, type KvFactoriser } from "../../runtime/mla/build.ts";
import { ConversionError } from "./errors.ts";
import type { LayerMoments } from "./moments.ts";

export const SVD_METHODS = ["md", "joint", "split", "none"] as const;
export type SvdMethod = (typeof SVD_METHODS)[number];

export function svdMethodNeedsCalibration(m: SvdMethod): boolean {
  return m === "md";
}

export interface FactoriserOptions {
  /** Per-layer second moments (md only). */
  readonly moments: readonly LayerMoments[] | null;
  /** md: S ← S + damping·λ_max(S)·I before the Gram eigenproblem. */
  readonly damping: number;
}

/** The layer's W_k,nope and W_v as f64 matrices, with their geometry. */
export function kvMatrices(inp: KvFactorInput): { wk: Matrix; wv: Matrix; dims: KvDims } {
  const d = inp.hidden;
  const nKv = inp.config.numKvHeads;
  return {
    wk: fromFloat32(inp.wKNope.length / d, d, inp.wKNope),
    wv: fromFloat32(inp.wV.length / d, d, inp.wV),
    dims: { nKv, dNope: inp.nopeDims, dHead: inp.config.headDim, hidden: d },
  };
}

function projection(kv: LowRankKv): FactorProjection {
  return { downKv: kv.down.data, upK: kv.upK.data, upV: kv.upV.data };
}

export function kvFactoriser(method: SvdMethod, dKv: number, opts: FactoriserOptions): KvFactoriser {
  if (method === "none") return fullRankFactoriser(1);
  return (inp) => {
    const rank = inp.config.numKvHeads * dKv;
    const { wk, wv, dims } = kvMatrices(inp);
    if (method === "joint") return { shared: projection(svdJoint(wk, wv, dims, rank)) };
    if (method === "split") return { shared: projection(svdSplit(wk, wv, dims, rank)) };
    const m = opts.moments?.[inp.layer];
    if (!m || m.text === null || m.image === null) {
      throw new ConversionError("empty_modality", `layer ${inp.layer}: MD-SVD needs second moments of both modalities`);
    }
    const damping = { kind: "ridge-max", epsilon: opts.damping } as const;
    return {
      text: projection(mdSvdKv(wk, wv, dims, m.text, rank, { damping })),
      image: projection(mdSvdKv(wk, wv, dims, m.image, rank, { damping })),
    };
  };
}
