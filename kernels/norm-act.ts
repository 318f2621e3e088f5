// Row-wise and element-wise kernels of the decoder: RMSNorm (one row per workgroup, two tree reductions), SwiGLU
// (silu(gate)·up) and the residual add. All f32 in storage buffers the caller owns.
//
// RMSNorm is computed range-safely: a = max |x| first, then the mean of (x/a)², so rows whose squares overflow f32
// (|x| ≳ 1.8e19) still give x/rms·w (a zero row gives zeros).
import { KernelInputError } from "./errors.ts";
import type { GpuContext } from "./gpu-context.ts";
import { normalizeDispatch, uniformLayout, type KernelProgram } from "./program.ts";
import type { KernelCall } from "./dispatch.ts";

export const NORM_WORKGROUP = 256;
export const ELEMENTWISE_WORKGROUP = 256;

export const rmsNormUniforms = uniformLayout([
  ["rows", "u32"],
  ["dim", "u32"],
  ["eps", "f32"],
  ["gridX", "u32"],
] as const);

/** Bindings: 0 params, 1 x [rows, dim], 2 weight [dim], 3 out [rows, dim]. Grid: one workgroup per row (folded). */
export function createRmsNormProgram(): KernelProgram {
  return {
    name: "rms-norm",
    cacheHint: `wg${NORM_WORKGROUP}`,
    workgroupSize: NORM_WORKGROUP,
    getShaderSource: () => `
${rmsNormUniforms.wgsl}
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
const WG: u32 = ${NORM_WORKGROUP}u;
var<workgroup> red: array<f32, ${NORM_WORKGROUP}>;

@compute @workgroup_size(${NORM_WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let row = wid.y * P.gridX + wid.x;
  let live = row < P.rows;
  let o = row * P.dim;
  var m = 0.0;
  if (live) {
    for (var k = t; k < P.dim; k += WG) { m = max(m, abs(x[o + k])); }
  }
  red[t] = m;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s >> 1u) {
    if (t < s) { red[t] = max(red[t], red[t + s]); }
    workgroupBarrier();
  }
  let a = red[0];
  workgroupBarrier();
  var ss = 0.0;
  if (live && a > 0.0) {
    let inva = 1.0 / a;
    for (var k = t; k < P.dim; k += WG) { let v = x[o + k] * inva; ss += v * v; }
  }
  red[t] = ss;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s >> 1u) {
    if (t < s) { red[t] += red[t + s]; }
    workgroupBarrier();
  }
  if (!live) { return; }
  // x/rms with a = max |x|: (x/a) / sqrt(mean((x/a)²) + eps/a²) when a ≥ 1 (x² may overflow; no subnormal 1/rms),
  // else x / sqrt(mean((x/a)²)·a² + eps) (eps/a² may overflow; x² cannot). a = 0 is a zero row.
  let mean = red[0] / f32(P.dim);
  var pre = 1.0;
  var inv = 0.0;
  if (a >= 1.0) {
    pre = 1.0 / a;
    inv = 1.0 / sqrt(mean + (P.eps / a) / a);
  } else if (a > 0.0) {
    inv = 1.0 / sqrt(mean * a * a + P.eps);
  }
  for (var k = t; k < P.dim; k += WG) { out[o + k] = (x[o + k] * pre) * inv * weight[k]; }
}
`,
  };
}

export function rmsNormCall(ctx: GpuContext, x: GPUBuffer, weight: GPUBuffer, out: GPUBuffer, rows: number, dim: number, eps: number): KernelCall {
  if (!Number.isInteger(rows) || !Number.isInteger(dim) || rows < 1 || dim < 1) throw new KernelInputError(`RMSNorm shape [${rows}, ${dim}] must be positive integers`);
  if (!(eps >= 0)) throw new KernelInputError(`RMSNorm eps must be ≥ 0, got ${eps}`);
  if (x.size < rows * dim * 4 || out.size < rows * dim * 4 || weight.size < dim * 4) throw new KernelInputError(`RMSNorm buffers are smaller than [${rows}, ${dim}] f32`);
  const [gx, gy] = normalizeDispatch(rows, ctx.device.limits.maxComputeWorkgroupsPerDimension);
  return { program: createRmsNormProgram(), uniforms: rmsNormUniforms.pack({ rows, dim, eps, gridX: gx }), buffers: [x, weight, out], grid: [gx, gy, 1] };
}

export const swigluUniforms = uniformLayout([
  ["rows", "u32"],
  ["width", "u32"],
  ["gateStride", "u32"],
  ["gateOffset", "u32"],
  ["upStride", "u32"],
  ["upOffset", "u32"],
  ["gridX", "u32"],
] as const);

/**
 * out[r, i] = silu(g)·u with g = gate[r·gateStride + gateOffset + i], u = up[r·upStride + upOffset + i]: separate gate
 * and up buffers, or one fused [rows, 2·I] buffer bound twice. Bindings: 1 gate, 2 up, 3 out [rows, I].
 */
export function createSwigluProgram(): KernelProgram {
  return {
    name: "swiglu",
    cacheHint: `wg${ELEMENTWISE_WORKGROUP}`,
    workgroupSize: ELEMENTWISE_WORKGROUP,
    getShaderSource: () => `
${swigluUniforms.wgsl}
@group(0) @binding(1) var<storage, read> gate: array<f32>;
@group(0) @binding(2) var<storage, read> up: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(${ELEMENTWISE_WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let idx = (wid.y * P.gridX + wid.x) * ${ELEMENTWISE_WORKGROUP}u + t;
  if (idx >= P.rows * P.width) { return; }
  let r = idx / P.width;
  let i = idx % P.width;
  let g = gate[r * P.gateStride + P.gateOffset + i];
  // silu(g) = g / (1 + e^(−g)): e^(−g) overflows to +Inf for g ≪ 0 and the quotient is −0, the limit.
  out[idx] = g / (1.0 + exp(-g)) * up[r * P.upStride + P.upOffset + i];
}
`,
  };
}

export interface SwigluLayout {
  readonly rows: number;
  readonly width: number;
  /** Defaults: a separate gate buffer [rows, width] (stride width, offset 0); the same for up. */
  readonly gateStride?: number;
  readonly gateOffset?: number;
  readonly upStride?: number;
  readonly upOffset?: number;
}

export function swigluCall(ctx: GpuContext, gate: GPUBuffer, up: GPUBuffer, out: GPUBuffer, l: SwigluLayout): KernelCall {
  const gs = l.gateStride ?? l.width;
  const go = l.gateOffset ?? 0;
  const us = l.upStride ?? l.width;
  const uo = l.upOffset ?? 0;
  if (!Number.isInteger(l.rows) || !Number.isInteger(l.width) || l.rows < 1 || l.width < 1) throw new KernelInputError(`SwiGLU shape [${l.rows}, ${l.width}] must be positive integers`);
  if (gate.size < ((l.rows - 1) * gs + go + l.width) * 4 || up.size < ((l.rows - 1) * us + uo + l.width) * 4 || out.size < l.rows * l.width * 4) {
    throw new KernelInputError("SwiGLU buffers are smaller than the layout reads or writes");
  }
  const [gx, gy] = normalizeDispatch(Math.ceil((l.rows * l.width) / ELEMENTWISE_WORKGROUP), ctx.device.limits.maxComputeWorkgroupsPerDimension);
  return {
    program: createSwigluProgram(),
    uniforms: swigluUniforms.pack({ rows: l.rows, width: l.width, gateStride: gs, gateOffset: go, upStride: us, upOffset: uo, gridX: gx }),
    buffers: [gate, up, out],
    grid: [gx, gy, 1],
  };
}

export const addUniforms = uniformLayout([
  ["count", "u32"],
  ["gridX", "u32"],
] as const);

/** Residual add in place: h[i] += d[i] for i < count. Bindings: 1 h (read_write), 2 d. */
export function createResidualAddProgram(): KernelProgram {
  return {
    name: "residual-add",
    cacheHint: `wg${ELEMENTWISE_WORKGROUP}`,
    workgroupSize: ELEMENTWISE_WORKGROUP,
    getShaderSource: () => `
${addUniforms.wgsl}
@group(0) @binding(1) var<storage, read_write> h: array<f32>;
@group(0) @binding(2) var<storage, read> d: array<f32>;

@compute @workgroup_size(${ELEMENTWISE_WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let idx = (wid.y * P.gridX + wid.x) * ${ELEMENTWISE_WORKGROUP}u + t;
  if (idx >= P.count) { return; }
  h[idx] = h[idx] + d[idx];
}
`,
  };
}

export function residualAddCall(ctx: GpuContext, h: GPUBuffer, d: GPUBuffer, count: number): KernelCall {
  if (!Number.isInteger(count) || count < 1) throw new KernelInputError(`residual add count must be a positive integer, got ${count}`);
  if (h === d) throw new KernelInputError("residual add: h and d must be different buffers");
  if (h.size < count * 4 || d.size < count * 4) throw new KernelInputError(`residual add buffers are smaller than ${count} f32`);
  const [gx, gy] = normalizeDispatch(Math.ceil(count / ELEMENTWISE_WORKGROUP), ctx.device.limits.maxComputeWorkgroupsPerDimension);
  return { program: createResidualAddProgram(), uniforms: addUniforms.pack({ count, gridX: gx }), buffers: [h, d], grid: [gx, gy, 1] };
}

export const geluUniforms = uniformLayout([
  ["count", "u32"],
  ["gridX", "u32"],
] as const);

/**
 * Exact (erf) GELU in place: x ← ½x(1 + erf(x/√2)) (Qwen2.5-VL's PatchMerger). WGSL has no erf: the Numerical
 * Recipes erfc Chebyshev fit (fractional error < 1.2e-7, the CPU tower's runtime/ops.ts erf), evaluated in f32.
 * Bindings: 1 x (read_write).
 */
export function createGeluProgram(): KernelProgram {
  return {
    name: "gelu-erf",
    cacheHint: `wg${ELEMENTWISE_WORKGROUP}`,
    workgroupSize: ELEMENTWISE_WORKGROUP,
    getShaderSource: () => `
${geluUniforms.wgsl}
@group(0) @binding(1) var<storage, read_write> x: array<f32>;

fn erfApprox(v: f32) -> f32 {
  let z = abs(v);
  let t = 1.0 / (1.0 + 0.5 * z);
  let poly = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807
    + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
  // e^(−z² + poly) underflows to 0 for z ≳ 9.3: erfc = 0, erf = ±1, the limit.
  let erfc = t * exp(-z * z + poly);
  return select(erfc - 1.0, 1.0 - erfc, v >= 0.0);
}

@compute @workgroup_size(${ELEMENTWISE_WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let idx = (wid.y * P.gridX + wid.x) * ${ELEMENTWISE_WORKGROUP}u + t;
  if (idx >= P.count) { return; }
  let v = x[idx];
  x[idx] = 0.5 * v * (1.0 + erfApprox(v * 0.7071067811865476));
}
`,
  };
}

export function geluCall(ctx: GpuContext, x: GPUBuffer, count: number): KernelCall {
  if (!Number.isInteger(count) || count < 1) throw new KernelInputError(`GELU count must be a positive integer, got ${count}`);
  if (x.size < count * 4) throw new KernelInputError(`GELU buffer is smaller than ${count} f32`);
  const [gx, gy] = normalizeDispatch(Math.ceil(count / ELEMENTWISE_WORKGROUP), ctx.device.limits.maxComputeWorkgroupsPerDimension);
  return { program: createGeluProgram(), uniforms: geluUniforms.pack({ count, gridX: gx }), buffers: [x], grid: [gx, gy, 1] };
}

export const gatherRowsUniforms = uniformLayout([
  ["rows", "u32"],
  ["width", "u32"],
  ["srcRows", "u32"],
  ["gridX", "u32"],
] as const);

/**
 * out[r, :] = src[index[r], :] (row permutations: the vision tower's window order and its inverse). Indices ≥ srcRows
 * write zeros. Bindings: 1 src f32 [srcRows, width], 2 index u32 [rows], 3 out f32 [rows, width].
 */
export function createGatherRowsProgram(): KernelProgram {
  return {
    name: "gather-rows",
    cacheHint: `wg${ELEMENTWISE_WORKGROUP}`,
    workgroupSize: ELEMENTWISE_WORKGROUP,
    getShaderSource: () => `
${gatherRowsUniforms.wgsl}
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> index: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(${ELEMENTWISE_WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let idx = (wid.y * P.gridX + wid.x) * ${ELEMENTWISE_WORKGROUP}u + t;
  if (idx >= P.rows * P.width) { return; }
  let r = idx / P.width;
  let s = index[r];
  var v = 0.0;
  if (s < P.srcRows) { v = src[s * P.width + idx % P.width]; }
  out[idx] = v;
}
`,
  };
}

export function gatherRowsCall(ctx: GpuContext, src: GPUBuffer, index: GPUBuffer, out: GPUBuffer, rows: number, width: number, srcRows: number): KernelCall {
  for (const [n, v] of [["rows", rows], ["width", width], ["srcRows", srcRows]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new KernelInputError(`gather rows: ${n} must be a positive integer, got ${v}`);
  }
  if (src === out) throw new KernelInputError("gather rows: src and out must be different buffers");
  if (src.size < srcRows * width * 4 || index.size < rows * 4 || out.size < rows * width * 4) throw new KernelInputError("gather rows: buffers are smaller than the shapes");
  const [gx, gy] = normalizeDispatch(Math.ceil((rows * width) / ELEMENTWISE_WORKGROUP), ctx.device.limits.maxComputeWorkgroupsPerDimension);
  return { program: createGatherRowsProgram(), uniforms: gatherRowsUniforms.pack({ rows, width, srcRows, gridX: gx }), buffers: [src, index, out], grid: [gx, gy, 1] };
}
