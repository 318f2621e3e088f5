// The absorbed projections of MLA decode on WebGPU (docs/method.md §8.3, docs/kernels.md "Absorbed projections"): the
// kernels around the latent attention of mla-attention*.ts, so a whole layer stays on the GPU.
//
//   absorb-query  per (token t, head h) and latent space m, from the projected row y[t] = [q_rope (n_h·r) | q_nope
//                 (n_h·d_c) | …] (RoPE already applied):
//                   q̃ᵐ[t, h, i] = Σ_e q_nope[t, h, e] · W_ukᵐ[g(h)·d_c + e, i]     (W_ukᵐ [n_kv·d_c × D_c], any layout)
//                   βᵐ[t, h]    = Σ_e q_nope[t, h, e] · b_ukᵐ[g(h)·d_c + e]
//                 written straight into the attention's query layout (types.ts packQueries / geometry.ts queryStride):
//                 [q_rope n_h·r | q̃ per space n_h·D_c | β per space n_h]; space 0's dispatch also copies q_rope.
//   absorb-output o[t, h, e] (+)= Σ_i W_uvᵐ[g(h)·d_h + e, i] · ōᵐ[t, h, i] + Pᵐ[t, h] · b_uvᵐ[g(h)·d_h + e], from the
//                 attention's flat output ([t][m][h][D_c] then masses [t][m][h]); one dispatch per space, the second
//                 accumulating. o then goes through o_proj (a plain linear, matmul-nbits.ts).
//   latent-rows   the cache rows of a block: row t = [latent of token t's space (D_c) | rotated k_rope (n_kv·r)] from the
//                 projected row y[t] = [… | k_rope | latent space 0 | latent space 1], modality per token: what the
//                 f32 tail of the latent cache holds (tailStride = D_c + n_kv·r).
// Weights come in any linear layout of matmul-nbits.ts (MatMulNBits int4/int8 along D_c, f16, f32) read with `wAt`.
import { KernelInputError } from "./errors.ts";
import type { GpuContext } from "./gpu-context.ts";
import { kBlocksOf, weightReaderWgsl, type GpuWeights, type WeightFormat } from "./matmul-nbits.ts";
import { normalizeDispatch, shaderPreamble, uniformLayout, type KernelProgram } from "./program.ts";
import type { KernelCall } from "./dispatch.ts";

export const ABSORB_WORKGROUP = 64;

function formatHint(f: WeightFormat): string {
  return f.kind === "nbits" ? `q${f.bits}-b${f.block}-${f.zeroPoints ? "zp" : "nozp"}` : f.kind;
}

function weightBindings(f: WeightFormat): number {
  return f.kind === "nbits" ? (f.zeroPoints ? 3 : 2) : 1;
}

export const absorbQueryUniforms = uniformLayout([
  ["tokens", "u32"],
  ["heads", "u32"],
  ["headsPerGroup", "u32"],
  ["r", "u32"],
  ["dc", "u32"],
  /** D_c: row length of W_uk (the weight reader's K). */
  ["K", "u32"],
  ["kBlocks", "u32"],
  /** Row stride of y and where q_nope starts in a row. */
  ["yStride", "u32"],
  ["qNopeOffset", "u32"],
  /** Query stride of the attention (queryStride) and the space written. */
  ["queryStride", "u32"],
  ["space", "u32"],
  ["spaces", "u32"],
  ["copyRope", "u32"],
] as const);

/** Bindings: 0 params, 1 y [tokens × yStride], 2.. W_uk, then b_uk [n_kv·d_c] (when `bias`), then queries (read_write). */
export function createAbsorbQueryProgram(f: WeightFormat, bias: boolean): KernelProgram {
  const biasB = 2 + weightBindings(f);
  const outB = biasB + (bias ? 1 : 0);
  return {
    name: "mla-absorb-query",
    cacheHint: `${formatHint(f)}-${bias ? "bias" : "nobias"}-wg${ABSORB_WORKGROUP}`,
    workgroupSize: ABSORB_WORKGROUP,
    getShaderSource: (features) => `${shaderPreamble(features)}
${absorbQueryUniforms.wgsl}
@group(0) @binding(1) var<storage, read> y: array<f32>;
${weightReaderWgsl(f, 2, features)}
${bias ? `@group(0) @binding(${biasB}) var<storage, read> bUk: array<f32>;` : ""}
@group(0) @binding(${outB}) var<storage, read_write> q: array<f32>;

@compute @workgroup_size(${ABSORB_WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let h = wid.x;
  let tok = wid.y;
  if (h >= P.heads || tok >= P.tokens) { return; }
  let g = h / P.headsPerGroup;
  let qn = tok * P.yStride + P.qNopeOffset + h * P.dc;
  let D = P.K;
  let base = tok * P.queryStride;
  let nr = P.heads * P.r;
  let extra = select(0u, P.r, P.copyRope == 1u);
  for (var i = t; i < D + 1u + extra; i += ${ABSORB_WORKGROUP}u) {
    if (i < D) {
      var acc = 0.0;
      for (var e = 0u; e < P.dc; e++) { acc += y[qn + e] * wAt(g * P.dc + e, i); }
      q[base + nr + (P.space * P.heads + h) * D + i] = acc;
    } else if (i == D) {
      var b = 0.0;
      ${bias ? "for (var e = 0u; e < P.dc; e++) { b += y[qn + e] * bUk[g * P.dc + e]; }" : ""}
      q[base + nr + P.spaces * P.heads * D + P.space * P.heads + h] = b;
    } else {
      let e = i - D - 1u;
      q[base + h * P.r + e] = y[tok * P.yStride + h * P.r + e];
    }
  }
}
`,
  };
}

export interface AbsorbQueryLayout {
  readonly tokens: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly ropeDims: number;
  /** d_c = d_h − r: NoPE dims per head. */
  readonly nopeDims: number;
  /** Row stride of y; q_nope of head h starts at qNopeOffset + h·d_c (default heads·r). */
  readonly yStride: number;
  readonly qNopeOffset?: number;
  readonly space: number;
  readonly spaces: 1 | 2;
}

/** q̃ᵐ and βᵐ (and, for space 0, q_rope) of every token and head into `queries` (the attention's query layout). */
export function absorbQueryCall(ctx: GpuContext, upK: GpuWeights, bias: GPUBuffer | null, y: GPUBuffer, queries: GPUBuffer, l: AbsorbQueryLayout): KernelCall {
  const D = upK.k;
  const { tokens, heads, kvHeads, ropeDims: r, nopeDims: dc } = l;
  const qNopeOffset = l.qNopeOffset ?? heads * r;
  if (upK.n !== kvHeads * dc) throw new KernelInputError(`W_uk has ${upK.n} rows; n_kv·d_c = ${kvHeads}·${dc} = ${kvHeads * dc}`);
  if (heads % kvHeads !== 0) throw new KernelInputError(`${heads} heads do not split into ${kvHeads} KV groups`);
  if (!(l.space >= 0 && l.space < l.spaces)) throw new KernelInputError(`space ${l.space} is outside [0, ${l.spaces})`);
  const stride = heads * r + l.spaces * heads * D + l.spaces * heads;
  if (y.size < ((tokens - 1) * l.yStride + qNopeOffset + heads * dc) * 4) throw new KernelInputError("y is smaller than the rows the absorbed queries read");
  if (queries.size < tokens * stride * 4) throw new KernelInputError(`the query buffer holds fewer than ${tokens} × ${stride} f32`);
  if (bias && bias.size < kvHeads * dc * 4) throw new KernelInputError(`b_uk holds fewer than ${kvHeads * dc} f32`);
  const maxDim = ctx.device.limits.maxComputeWorkgroupsPerDimension;
  if (tokens > maxDim || heads > maxDim) throw new KernelInputError(`absorb-query grid ${heads}×${tokens} passes ${maxDim}`);
  return {
    program: createAbsorbQueryProgram(upK.format, bias !== null),
    uniforms: absorbQueryUniforms.pack({
      tokens,
      heads,
      headsPerGroup: heads / kvHeads,
      r,
      dc,
      K: D,
      kBlocks: upK.format.kind === "nbits" ? kBlocksOf(D, upK.format.block) : 0,
      yStride: l.yStride,
      qNopeOffset,
      queryStride: stride,
      space: l.space,
      spaces: l.spaces,
      copyRope: l.space === 0 ? 1 : 0,
    }),
    buffers: [y, ...upK.buffers, ...(bias ? [bias] : []), queries],
    grid: [heads, tokens, 1],
  };
}

export const absorbOutputUniforms = uniformLayout([
  ["tokens", "u32"],
  ["heads", "u32"],
  ["headsPerGroup", "u32"],
  ["dh", "u32"],
  /** D_c: row length of W_uv. */
  ["K", "u32"],
  ["kBlocks", "u32"],
  ["space", "u32"],
  ["spaces", "u32"],
  ["massOffset", "u32"],
  ["accumulate", "u32"],
  ["gridX", "u32"],
] as const);

/** Bindings: 0 params, 1 attention output (flat), 2.. W_uv, then b_uv [n_kv·d_h] (when `bias`), then o (read_write). */
export function createAbsorbOutputProgram(f: WeightFormat, bias: boolean): KernelProgram {
  const biasB = 2 + weightBindings(f);
  const outB = biasB + (bias ? 1 : 0);
  return {
    name: "mla-absorb-output",
    cacheHint: `${formatHint(f)}-${bias ? "bias" : "nobias"}-wg${ABSORB_WORKGROUP}`,
    workgroupSize: ABSORB_WORKGROUP,
    getShaderSource: (features) => `${shaderPreamble(features)}
${absorbOutputUniforms.wgsl}
@group(0) @binding(1) var<storage, read> att: array<f32>;
${weightReaderWgsl(f, 2, features)}
${bias ? `@group(0) @binding(${biasB}) var<storage, read> bUv: array<f32>;` : ""}
@group(0) @binding(${outB}) var<storage, read_write> o: array<f32>;

@compute @workgroup_size(${ABSORB_WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let idx = (wid.y * P.gridX + wid.x) * ${ABSORB_WORKGROUP}u + t;
  if (idx >= P.tokens * P.heads * P.dh) { return; }
  let e = idx % P.dh;
  let h = (idx / P.dh) % P.heads;
  let tok = idx / (P.dh * P.heads);
  let row = (h / P.headsPerGroup) * P.dh + e;
  let th = (tok * P.spaces + P.space) * P.heads + h;
  let ob = th * P.K;
  var acc = 0.0;
  for (var i = 0u; i < P.K; i++) { acc += wAt(row, i) * att[ob + i]; }
  ${bias ? "acc += att[P.massOffset + th] * bUv[row];" : ""}
  if (P.accumulate == 1u) { o[idx] = o[idx] + acc; } else { o[idx] = acc; }
}
`,
  };
}

export interface AbsorbOutputLayout {
  readonly tokens: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly space: number;
  readonly spaces: 1 | 2;
  /** Add to o instead of overwriting it (every space after the first). */
  readonly accumulate: boolean;
}

/** o [tokens × n_h·d_h] (+)= W_uvᵐ ōᵐ + Pᵐ b_uvᵐ from the attention's flat output `att`. */
export function absorbOutputCall(ctx: GpuContext, upV: GpuWeights, bias: GPUBuffer | null, att: GPUBuffer, o: GPUBuffer, l: AbsorbOutputLayout): KernelCall {
  const D = upV.k;
  const { tokens, heads, kvHeads, headDim: dh } = l;
  if (upV.n !== kvHeads * dh) throw new KernelInputError(`W_uv has ${upV.n} rows; n_kv·d_h = ${kvHeads}·${dh} = ${kvHeads * dh}`);
  if (heads % kvHeads !== 0) throw new KernelInputError(`${heads} heads do not split into ${kvHeads} KV groups`);
  if (!(l.space >= 0 && l.space < l.spaces)) throw new KernelInputError(`space ${l.space} is outside [0, ${l.spaces})`);
  const massOffset = tokens * l.spaces * heads * D;
  if (att.size < (massOffset + tokens * l.spaces * heads) * 4) throw new KernelInputError("the attention output is smaller than its latent outputs and masses");
  if (o.size < tokens * heads * dh * 4) throw new KernelInputError(`o holds fewer than ${tokens} × ${heads * dh} f32`);
  if (bias && bias.size < kvHeads * dh * 4) throw new KernelInputError(`b_uv holds fewer than ${kvHeads * dh} f32`);
  const [gx, gy] = normalizeDispatch(Math.ceil((tokens * heads * dh) / ABSORB_WORKGROUP), ctx.device.limits.maxComputeWorkgroupsPerDimension);
  return {
    program: createAbsorbOutputProgram(upV.format, bias !== null),
    uniforms: absorbOutputUniforms.pack({
      tokens,
      heads,
      headsPerGroup: heads / kvHeads,
      dh,
      K: D,
      kBlocks: upV.format.kind === "nbits" ? kBlocksOf(D, upV.format.block) : 0,
      space: l.space,
      spaces: l.spaces,
      massOffset,
      accumulate: l.accumulate ? 1 : 0,
      gridX: gx,
    }),
    buffers: [att, ...upV.buffers, ...(bias ? [bias] : []), o],
    grid: [gx, gy, 1],
  };
}

export const latentRowsUniforms = uniformLayout([
  ["tokens", "u32"],
  ["yStride", "u32"],
  ["ropeOffset", "u32"],
  ["ropeWidth", "u32"],
  ["latentOffset", "u32"],
  ["latentWidth", "u32"],
  ["spaces", "u32"],
  ["gridX", "u32"],
] as const);

/** Bindings: 0 params, 1 y, 2 modality u32 [tokens], 3 rows (read_write) [tokens × (D_c + n_kv·r)]. */
export function createLatentRowsProgram(): KernelProgram {
  return {
    name: "mla-latent-rows",
    cacheHint: `wg${ABSORB_WORKGROUP}`,
    workgroupSize: ABSORB_WORKGROUP,
    getShaderSource: () => `
${latentRowsUniforms.wgsl}
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read> modality: array<u32>;
@group(0) @binding(3) var<storage, read_write> rows: array<f32>;

@compute @workgroup_size(${ABSORB_WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let idx = (wid.y * P.gridX + wid.x) * ${ABSORB_WORKGROUP}u + t;
  let width = P.latentWidth + P.ropeWidth;
  if (idx >= P.tokens * width) { return; }
  let c = idx % width;
  let tok = idx / width;
  let row = tok * P.yStride;
  if (c < P.latentWidth) {
    let m = select(0u, min(modality[tok], 1u), P.spaces == 2u);
    rows[idx] = y[row + P.latentOffset + m * P.latentWidth + c];
  } else {
    rows[idx] = y[row + P.ropeOffset + c - P.latentWidth];
  }
}
`,
  };
}

export interface LatentRowsLayout {
  readonly tokens: number;
  readonly yStride: number;
  readonly ropeOffset: number;
  readonly ropeWidth: number;
  /** Where space 0's latent starts in a row of y; space 1's follows it. */
  readonly latentOffset: number;
  readonly latentWidth: number;
  readonly spaces: 1 | 2;
}

/** Cache rows [latent of the token's space | k_rope] of a block (the latent cache's tail row layout). */
export function latentRowsCall(ctx: GpuContext, y: GPUBuffer, modality: GPUBuffer, rows: GPUBuffer, l: LatentRowsLayout): KernelCall {
  const width = l.latentWidth + l.ropeWidth;
  if (l.ropeOffset + l.ropeWidth > l.yStride || l.latentOffset + l.spaces * l.latentWidth > l.yStride) throw new KernelInputError("k_rope or the latents pass the row of y");
  if (y.size < l.tokens * l.yStride * 4 || rows.size < l.tokens * width * 4 || modality.size < l.tokens * 4) throw new KernelInputError(`latent-rows buffers are smaller than ${l.tokens} tokens`);
  const [gx, gy] = normalizeDispatch(Math.ceil((l.tokens * width) / ABSORB_WORKGROUP), ctx.device.limits.maxComputeWorkgroupsPerDimension);
  return {
    program: createLatentRowsProgram(),
    uniforms: latentRowsUniforms.pack({ ...l, gridX: gx }),
    buffers: [y, modality, rows],
    grid: [gx, gy, 1],
  };
}
