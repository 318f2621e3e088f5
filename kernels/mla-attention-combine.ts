// Pass 2 of flash-decoding: merges the per-split (max M_s, masses ℓ_s^m, accumulators a_s^m) of pass 1 by
// log-sum-exp (docs/method.md §8.4): M = max_s M_s, w_s = e^{M_s − M}, Z = Σ_s w_s Σ_m ℓ_s^m,
// ōᵐ = Σ_s w_s a_s^m / Z, Pᵐ = Σ_s w_s ℓ_s^m / Z. One workgroup per (head, query).
import type { CacheLayout } from "./geometry.ts";
import { shaderPreamble, uniformLayout, type KernelProgram } from "./program.ts";

export const COMBINE_WORKGROUP = 64;
/** Upper bound on splits so the split weights fit workgroup memory (1 KiB). */
export const MAX_SPLITS = 256;

export const combineUniforms = uniformLayout([
  ["splitCount", "u32"],
  ["queryCount", "u32"],
  ["massOffset", "u32"],
] as const);

export function createMlaAttentionCombineProgram(layout: CacheLayout): KernelProgram {
  const g = layout.geometry;
  return {
    name: "mla-attention-combine",
    cacheHint: `h${g.heads}-dc${g.latentWidth}-s${g.spaces}-wg${COMBINE_WORKGROUP}`,
    workgroupSize: COMBINE_WORKGROUP,
    getShaderSource: (features) => `${shaderPreamble(features)}
${combineUniforms.wgsl}
@group(0) @binding(1) var<storage, read> partStats: array<f32>;
@group(0) @binding(2) var<storage, read> partAcc: array<f32>;
@group(0) @binding(3) var<storage, read_write> outBuf: array<f32>;

const NH: u32 = ${g.heads}u;
const DC: u32 = ${g.latentWidth}u;
const SPACES: u32 = ${g.spaces}u;
const WG: u32 = ${COMBINE_WORKGROUP}u;
const NEG: f32 = -3.0e38;

var<workgroup> weight: array<f32, ${MAX_SPLITS}>;

@compute @workgroup_size(${COMBINE_WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let h = wid.x;
  let qi = wid.y;
  let n = P.splitCount;
  var M = NEG;
  for (var s = 0u; s < n; s++) { M = max(M, partStats[((qi * n + s) * NH + h) * 4u]); }
  for (var s = t; s < n; s += WG) { weight[s] = exp(partStats[((qi * n + s) * NH + h) * 4u] - M); }
  workgroupBarrier();
  var L0 = 0.0;
  var L1 = 0.0;
  for (var s = 0u; s < n; s++) {
    let b = ((qi * n + s) * NH + h) * 4u;
    L0 += weight[s] * partStats[b + 1u];
    L1 += weight[s] * partStats[b + 2u];
  }
  let invZ = 1.0 / (L0 + L1);
  for (var m = 0u; m < SPACES; m++) {
    for (var c = t; c < DC; c += WG) {
      var a = 0.0;
      for (var s = 0u; s < n; s++) { a += weight[s] * partAcc[(((qi * n + s) * NH + h) * SPACES + m) * DC + c]; }
      outBuf[((qi * SPACES + m) * NH + h) * DC + c] = a * invZ;
    }
  }
  if (t == 0u) {
    outBuf[P.massOffset + (qi * SPACES) * NH + h] = L0 * invZ;
    if (SPACES == 2u) { outBuf[P.massOffset + (qi * SPACES + 1u) * NH + h] = L1 * invZ; }
  }
}
`,
  };
}
