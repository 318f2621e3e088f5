// Shapes shared by the low-rank factorisations of one layer's KV projection (docs/method.md §1, §5, §7).
import type { Matrix } from "../linalg/matrix.ts";
import { LowRankError } from "./errors.ts";

/** One layer's KV geometry. Rows of W_k,nope are head-major (head g: rows g·dNope…), likewise W_v with dHead. */
export interface KvDims {
  /** n_kv: KV heads. */
  readonly nKv: number;
  /** d_c = d_h − r_dim: NoPE key dims per KV head. */
  readonly dNope: number;
  /** d_h: value dims per KV head. */
  readonly dHead: number;
  /** d: hidden size (the attention input width). */
  readonly hidden: number;
}

/**
 * A layer's low-rank KV: one latent c = down·x of width `rank` (= D_c = n_kv·d_kv) per token, shared by all KV heads
 * and by K and V; k_nope = upK·c (+ b_k,nope), v = upV·c (+ b_v). Biases stay with the caller.
 */
export interface LowRankKv {
  /** rank × d */
  readonly down: Matrix;
  /** n_kv·d_c × rank */
  readonly upK: Matrix;
  /** n_kv·d_h × rank */
  readonly upV: Matrix;
}

export function checkKvWeights(where: string, wkNope: Matrix, wv: Matrix, dims: KvDims): void {
  const { nKv, dNope, dHead, hidden } = dims;
  for (const [name, v] of Object.entries(dims)) {
    if (!Number.isInteger(v) || v <= 0) throw new LowRankError("shape_mismatch", `${where}: dims.${name} = ${v}`);
  }
  if (wkNope.rows !== nKv * dNope || wkNope.cols !== hidden) {
    throw new LowRankError(
      "shape_mismatch",
      `${where}: W_k,nope is ${wkNope.rows}×${wkNope.cols}, expected ${nKv * dNope}×${hidden} (n_kv·d_c × d)`,
    );
  }
  if (wv.rows !== nKv * dHead || wv.cols !== hidden) {
    throw new LowRankError("shape_mismatch", `${where}: W_v is ${wv.rows}×${wv.cols}, expected ${nKv * dHead}×${hidden} (n_kv·d_h × d)`);
  }
}

export function checkRank(where: string, rank: number, max: number): void {
  if (!Number.isInteger(rank) || rank < 1 || rank > max) {
    throw new LowRankError("bad_rank", `${where}: rank ${rank} outside 1..${max}`);
  }
}
