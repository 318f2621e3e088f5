// The vision tower's attention on WebGPU: non-causal multi-head attention within segments (Qwen2.5-VL's window
// attention, cu_window_seqlens, and full attention per frame, cu_seqlens). f64 reference in vision-attention.ref.ts.
//
// One workgroup of 64 threads per (row, head): q·scale is staged in workgroup memory, keys of the row's segment are
// scored 64 at a time (one key per thread), an online softmax (running max and sum, rescaled per chunk) keeps the
// weights, and the threads own output elements e ≡ t (mod 64) of the head (head_dim up to 64·EPT). Any row count,
// segment length and head dim; q, k and v are read at (stride, offset) so a fused [rows, 3·D] qkv or separate buffers
// both work. The segment bounds come from a per-row [start, end) table (segmentBounds in the reference module).
import { KernelInputError } from "./errors.ts";
import type { GpuContext } from "./gpu-context.ts";
import { normalizeDispatch, uniformLayout, type KernelProgram } from "./program.ts";
import type { KernelCall } from "./dispatch.ts";
import type { VisionAttentionLayout } from "./vision-attention.ref.ts";

export const VISION_ATTENTION_WORKGROUP = 64;

export const visionAttentionUniforms = uniformLayout([
  ["rows", "u32"],
  ["heads", "u32"],
  ["qStride", "u32"],
  ["qOffset", "u32"],
  ["kStride", "u32"],
  ["kOffset", "u32"],
  ["vStride", "u32"],
  ["vOffset", "u32"],
  ["scale", "f32"],
  ["gridX", "u32"],
] as const);

/** Bindings: 1 q, 2 k, 3 v (f32, may be one buffer), 4 bounds u32 [rows, 2], 5 out f32 [rows, heads·headDim]. */
export function createVisionAttentionProgram(headDim: number): KernelProgram {
  if (!Number.isInteger(headDim) || headDim < 1 || headDim > 1024) throw new KernelInputError(`vision attention head dim must be in [1, 1024], got ${headDim}`);
  const WG = VISION_ATTENTION_WORKGROUP;
  const ept = Math.ceil(headDim / WG);
  return {
    name: "vision-attention",
    cacheHint: `d${headDim}-wg${WG}`,
    workgroupSize: WG,
    getShaderSource: () => `
${visionAttentionUniforms.wgsl}
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> bounds: array<u32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
const WG: u32 = ${WG}u;
const D: u32 = ${headDim}u;
const EPT: u32 = ${ept}u;
const NEG: f32 = -3.0e38;
var<workgroup> qs: array<f32, ${headDim}>;
var<workgroup> pw: array<f32, ${WG}>;
var<workgroup> red: array<f32, ${WG}>;
var<workgroup> seg: vec2<u32>;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let item = wid.y * P.gridX + wid.x;
  if (item >= P.rows * P.heads) { return; }
  let row = item / P.heads;
  let h = item % P.heads;
  let qo = P.qOffset + row * P.qStride + h * D;
  for (var e = t; e < D; e += WG) { qs[e] = q[qo + e] * P.scale; }
  if (t == 0u) { seg = vec2<u32>(bounds[2u * row], bounds[2u * row + 1u]); }
  let sb = workgroupUniformLoad(&seg);
  var m = NEG;
  var l = 0.0;
  var acc: array<f32, ${ept}>;
  for (var i = 0u; i < EPT; i++) { acc[i] = 0.0; }
  for (var c = sb.x; c < sb.y; c += WG) {
    let j = c + t;
    var s = NEG;
    if (j < sb.y) {
      let ko = P.kOffset + j * P.kStride + h * D;
      var dot = 0.0;
      for (var e = 0u; e < D; e++) { dot += qs[e] * k[ko + e]; }
      s = dot;
    }
    red[t] = s;
    workgroupBarrier();
    for (var r = WG / 2u; r > 0u; r = r >> 1u) {
      if (t < r) { red[t] = max(red[t], red[t + r]); }
      workgroupBarrier();
    }
    let mNew = max(m, red[0]);
    workgroupBarrier();
    var p = 0.0;
    if (j < sb.y) { p = exp(s - mNew); }
    pw[t] = p;
    red[t] = p;
    workgroupBarrier();
    for (var r = WG / 2u; r > 0u; r = r >> 1u) {
      if (t < r) { red[t] += red[t + r]; }
      workgroupBarrier();
    }
    let alpha = exp(m - mNew);
    l = l * alpha + red[0];
    let n = min(WG, sb.y - c);
    for (var i = 0u; i < EPT; i++) {
      let e = t + i * WG;
      if (e < D) {
        var a = acc[i] * alpha;
        for (var jj = 0u; jj < n; jj++) { a += pw[jj] * v[P.vOffset + (c + jj) * P.vStride + h * D + e]; }
        acc[i] = a;
      }
    }
    m = mNew;
    workgroupBarrier();
  }
  let inv = 1.0 / l;
  let oo = (row * P.heads + h) * D;
  for (var i = 0u; i < EPT; i++) {
    let e = t + i * WG;
    if (e < D) { out[oo + e] = acc[i] * inv; }
  }
}
`,
  };
}

/** The dispatch: out [rows, heads·headDim] = segment attention of q, k, v (layout) within `bounds` ([rows, 2] u32). */
export function visionAttentionCall(
  ctx: GpuContext,
  buffers: { readonly q: GPUBuffer; readonly k: GPUBuffer; readonly v: GPUBuffer; readonly bounds: GPUBuffer; readonly out: GPUBuffer },
  l: VisionAttentionLayout,
): KernelCall {
  const { rows, heads, headDim } = l;
  for (const [n, x] of [["rows", rows], ["heads", heads], ["headDim", headDim]] as const) {
    if (!Number.isInteger(x) || x < 1) throw new KernelInputError(`vision attention ${n} must be a positive integer, got ${x}`);
  }
  const width = heads * headDim;
  const need = (stride: number, offset: number) => ((rows - 1) * stride + offset + width) * 4;
  for (const [n, stride, offset, buf] of [
    ["q", l.qStride, l.qOffset, buffers.q],
    ["k", l.kStride, l.kOffset, buffers.k],
    ["v", l.vStride, l.vOffset, buffers.v],
  ] as const) {
    if (!Number.isInteger(stride) || !Number.isInteger(offset) || offset < 0 || stride < width) throw new KernelInputError(`vision attention ${n}: stride ${stride} / offset ${offset} do not hold ${width} values per row`);
    if (buf.size < need(stride, offset)) throw new KernelInputError(`vision attention ${n} buffer holds ${buf.size} bytes; the layout reads ${need(stride, offset)}`);
  }
  if (buffers.bounds.size < rows * 8) throw new KernelInputError(`vision attention bounds hold ${buffers.bounds.size} bytes; [${rows}, 2] u32 needs ${rows * 8}`);
  if (buffers.out.size < rows * width * 4) throw new KernelInputError(`vision attention out holds ${buffers.out.size} bytes; [${rows}, ${width}] f32 needs ${rows * width * 4}`);
  if ([buffers.q, buffers.k, buffers.v, buffers.bounds].includes(buffers.out)) throw new KernelInputError("vision attention: out must not alias an input");
  const [gx, gy] = normalizeDispatch(rows * heads, ctx.device.limits.maxComputeWorkgroupsPerDimension);
  return {
    program: createVisionAttentionProgram(headDim),
    uniforms: visionAttentionUniforms.pack({
      rows,
      heads,
      qStride: l.qStride,
      qOffset: l.qOffset,
      kStride: l.kStride,
      kOffset: l.kOffset,
      vStride: l.vStride,
      vOffset: l.vOffset,
      scale: 1 / Math.sqrt(headDim),
      gridX: gx,
    }),
    buffers: [buffers.q, buffers.k, buffers.v, buffers.bounds, buffers.out],
    grid: [gx, gy, 1],
  };
}
