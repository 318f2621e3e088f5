// Inputs and outputs of MLA absorbed attention (docs/method.md §8.3), shared by the GPU kernels, the CPU fallback and the
// f64 references. Space index m = Modality value (0 text, 1 image); single-space models use m = 0 only.
import type { MlaGeometry } from "./geometry.ts";
import { queryStride } from "./geometry.ts";
import { KernelInputError } from "./errors.ts";

/** Queries of `queryCount` consecutive new tokens (1 for decode; a block for append). */
export interface MlaQueries {
  readonly queryCount: number;
  /** q_rope, [queryCount][n_h][r], rotated with the query's own position. */
  readonly qRope: Float32Array;
  /** Per space m: absorbed queries q̃ᵐ = W_ukᵐ[g]ᵀ q_nope, [queryCount][n_h][D_c]. */
  readonly qLatent: readonly Float32Array[];
  /** Per space m: key-bias scalars βᵐ = q_nope · b_ukᵐ[g], [queryCount][n_h]. */
  readonly keyBias: readonly Float32Array[];
}

/** Per-space attention outputs; the caller applies W_uvᵐ and P^m·b_uvᵐ. */
export interface MlaAttentionOutput<T extends Float32Array | Float64Array = Float32Array> {
  readonly queryCount: number;
  /** Per space m: ōᵐ = Σ_{j: m(j)=m} p_j c_j, [queryCount][n_h][D_c]. */
  readonly latentOut: T[];
  /** Per space m: Pᵐ = Σ_{j: m(j)=m} p_j, [queryCount][n_h]. */
  readonly mass: T[];
}

/** Checks the query arrays against the geometry; throws KernelInputError naming the wrong array. */
export function validateQueries(g: MlaGeometry, q: MlaQueries): void {
  const n = q.queryCount;
  if (!Number.isInteger(n) || n < 1) throw new KernelInputError(`queryCount must be a positive integer, got ${n}`);
  if (q.qRope.length !== n * g.heads * g.ropeDims) {
    throw new KernelInputError(`qRope has ${q.qRope.length} values, expected ${n}·${g.heads}·${g.ropeDims}`);
  }
  if (q.qLatent.length !== g.spaces || q.keyBias.length !== g.spaces) {
    throw new KernelInputError(`qLatent and keyBias need one array per latent space (${g.spaces})`);
  }
  for (let m = 0; m < g.spaces; m++) {
    if (q.qLatent[m].length !== n * g.heads * g.latentWidth) {
      throw new KernelInputError(`qLatent[${m}] has ${q.qLatent[m].length} values, expected ${n}·${g.heads}·${g.latentWidth}`);
    }
    if (q.keyBias[m].length !== n * g.heads) {
      throw new KernelInputError(`keyBias[${m}] has ${q.keyBias[m].length} values, expected ${n}·${g.heads}`);
    }
  }
}

/** Interleaves the queries into the kernel's per-step layout (see `queryStride`). */
export function packQueries(g: MlaGeometry, q: MlaQueries): Float32Array {
  const stride = queryStride(g);
  const out = new Float32Array(q.queryCount * stride);
  const nr = g.heads * g.ropeDims;
  const nl = g.heads * g.latentWidth;
  for (let i = 0; i < q.queryCount; i++) {
    const base = i * stride;
    out.set(q.qRope.subarray(i * nr, (i + 1) * nr), base);
    for (let m = 0; m < g.spaces; m++) {
      out.set(q.qLatent[m].subarray(i * nl, (i + 1) * nl), base + nr + m * nl);
      out.set(q.keyBias[m].subarray(i * g.heads, (i + 1) * g.heads), base + nr + g.spaces * nl + m * g.heads);
    }
  }
  return out;
}
