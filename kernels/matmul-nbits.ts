// Linear layers on WebGPU with fused dequantization of ONNX Runtime `MatMulNBits` weights (docs/kernels.md, "Model
// kernels"): y[m, n] = Σ_k x[m, k] · W[n, k] + bias[n].
//
// Quantized layout (ORT MatMulNBits, the bytes the browser bundle ships):
//   B      uint8 [N, k_blocks, blob_size], k_blocks = ⌈K/block⌉, blob_size = block·bits/8; codes packed low-first
//          along K (4-bit: element k in the low nibble, k+1 in the high nibble). Read as little-endian u32: word w of a
//          row holds elements k = w·(32/bits) + i at bits i·bits. Codes past K in the last block are ignored.
//   scales f16 [N, k_blocks] (read as u32 + unpack2x16float: SwiftShader has no shader-f16).
//   zero   optional uint8: 4-bit packed low-first [N, ⌈k_blocks/2⌉], 8-bit [N, k_blocks]; absent → 2^(bits−1).
//   W[n, k] = (code − zero) · scale.
// Dense variants: f32 [N, K] or f16 [N, K] (row-major, element e = n·K + k at half e mod 2 of word ⌊e/2⌋).
//
// Programs: GEMV (decode, M small: 256 threads, 1–32 lanes per row by K (gemvLanes), lanes stride a row's u32 words,
// tree reduction) and tiled GEMM (prefill/vision: 64×64 output tile per 256-thread workgroup, 4×4 per thread, 16-deep K
// steps of x and dequantized W in workgroup memory, 8.7 KB). Both take any N, K, M (no multiple-of-tile requirement).
import { GeometryError, KernelInputError } from "./errors.ts";
import type { GpuContext } from "./gpu-context.ts";
import { fp16PairWgsl, normalizeDispatch, shaderPreamble, uniformLayout, type KernelProgram, type ShaderFeatures } from "./program.ts";
import { submitCalls, uploadBuffer, type KernelCall } from "./dispatch.ts";

export type NBits = 4 | 8;
export type NBitsBlock = 32 | 64 | 128;

/** Block-quantized weights in the MatMulNBits layout. */
export interface NBitsWeights {
  readonly kind: "nbits";
  readonly n: number;
  readonly k: number;
  readonly bits: NBits;
  readonly block: NBitsBlock;
  /** [N, k_blocks, blob_size] bytes. */
  readonly data: Uint8Array;
  /** f16 bit patterns [N, k_blocks]. */
  readonly scales: Uint16Array;
  /** 4-bit: [N, ⌈k_blocks/2⌉] packed low-first; 8-bit: [N, k_blocks]. */
  readonly zeroPoints?: Uint8Array;
}

/** Row-major [N, K] f32 values or f16 bit patterns. */
export type DenseWeights =
  | { readonly kind: "f32"; readonly n: number; readonly k: number; readonly data: Float32Array }
  | { readonly kind: "f16"; readonly n: number; readonly k: number; readonly data: Uint16Array };

export type LinearWeights = NBitsWeights | DenseWeights;

/** Compile-time facts of a weight layout (the cacheHint part). */
export type WeightFormat =
  | { readonly kind: "nbits"; readonly bits: NBits; readonly block: NBitsBlock; readonly zeroPoints: boolean }
  | { readonly kind: "f32" }
  | { readonly kind: "f16" };

export function kBlocksOf(k: number, block: number): number {
  return Math.ceil(k / block);
}

/** Zero-point bytes per row: ⌈k_blocks/2⌉ for 4 bits, k_blocks for 8. */
export function zeroPointStride(bits: NBits, kBlocks: number): number {
  return bits === 4 ? Math.ceil(kBlocks / 2) : kBlocks;
}

/** Checks sizes against (n, k, bits, block); throws GeometryError / KernelInputError. */
export function validateWeights(w: LinearWeights): void {
  if (!Number.isInteger(w.n) || !Number.isInteger(w.k) || w.n < 1 || w.k < 1) throw new GeometryError(`weight shape [${w.n}, ${w.k}] must be positive integers`);
  if (w.kind === "nbits") {
    if (w.bits !== 4 && w.bits !== 8) throw new GeometryError(`MatMulNBits bits must be 4 or 8, got ${String(w.bits)}`);
    if (w.block !== 32 && w.block !== 64 && w.block !== 128) throw new GeometryError(`MatMulNBits block must be 32, 64 or 128, got ${String(w.block)}`);
    const kb = kBlocksOf(w.k, w.block);
    const blob = (w.block * w.bits) / 8;
    if (w.data.length !== w.n * kb * blob) throw new KernelInputError(`B has ${w.data.length} bytes; [${w.n}, ${kb}, ${blob}] needs ${w.n * kb * blob}`);
    if (w.scales.length !== w.n * kb) throw new KernelInputError(`scales have ${w.scales.length} values; [${w.n}, ${kb}] needs ${w.n * kb}`);
    if (w.zeroPoints && w.zeroPoints.length !== w.n * zeroPointStride(w.bits, kb)) {
      throw new KernelInputError(`zero points have ${w.zeroPoints.length} bytes; need ${w.n * zeroPointStride(w.bits, kb)}`);
    }
  } else if (w.data.length !== w.n * w.k) {
    throw new KernelInputError(`${w.kind} weights have ${w.data.length} values; [${w.n}, ${w.k}] needs ${w.n * w.k}`);
  }
}

export function weightFormat(w: LinearWeights): WeightFormat {
  if (w.kind === "nbits") return { kind: "nbits", bits: w.bits, block: w.block, zeroPoints: w.zeroPoints !== undefined };
  return w.kind === "f32" ? { kind: "f32" } : { kind: "f16" };
}

function formatHint(f: WeightFormat): string {
  return f.kind === "nbits" ? `q${f.bits}-b${f.block}-${f.zeroPoints ? "zp" : "nozp"}` : f.kind;
}

/** Weights resident on the GPU. `buffers` are in binding order: data, then scales and zero points when present. */
export interface GpuWeights {
  readonly format: WeightFormat;
  readonly n: number;
  readonly k: number;
  readonly buffers: readonly GPUBuffer[];
  readonly bytes: number;
  destroy(): void;
}

export function uploadWeights(ctx: GpuContext, w: LinearWeights, label = "weights"): GpuWeights {
  validateWeights(w);
  // One binding per tensor: e.g. Qwen2.5-VL-3B's int4 LM head (151,936 × 2048 → 148 MiB of codes) passes the default
  // 128 MiB; request the adapter's limit for the device or split the weight along N.
  const limit = ctx.device.limits.maxStorageBufferBindingSize;
  if (w.data.byteLength > limit) {
    throw new KernelInputError(`${label}: ${w.data.byteLength} bytes pass the device's maxStorageBufferBindingSize (${limit}); split the weight along N or request a larger limit`);
  }
  const buffers = [uploadBuffer(ctx, `${label}-data`, w.data)];
  if (w.kind === "nbits") {
    buffers.push(uploadBuffer(ctx, `${label}-scales`, w.scales));
    if (w.zeroPoints) buffers.push(uploadBuffer(ctx, `${label}-zp`, w.zeroPoints));
  }
  return {
    format: weightFormat(w),
    n: w.n,
    k: w.k,
    buffers,
    bytes: buffers.reduce((s, b) => s + b.size, 0),
    destroy: () => buffers.forEach((b) => b.destroy()),
  };
}

/**
 * Bindings first..first+2 for the weights and WGSL `wAt(n, k) -> f32` (any format), plus for nbits `scaleAt`,
 * `zeroAt`, constants BITS/VPW/MASK/BLOCK/WPB. Needs uniforms `K` and `kBlocks`.
 */
export function weightReaderWgsl(f: WeightFormat, first: number, features: ShaderFeatures): string {
  if (f.kind === "f32") {
    return `@group(0) @binding(${first}) var<storage, read> W: array<f32>;
fn wAt(n: u32, k: u32) -> f32 { return W[n * P.K + k]; }
`;
  }
  if (f.kind === "f16") {
    return `${fp16PairWgsl(features)}@group(0) @binding(${first}) var<storage, read> W: array<u32>;
fn wAt(n: u32, k: u32) -> f32 { let e = n * P.K + k; return fp16Pair(W[e >> 1u])[e & 1u]; }
`;
  }
  const zero = f.zeroPoints
    ? f.bits === 4
      ? `@group(0) @binding(${first + 2}) var<storage, read> Z: array<u32>;
fn zeroAt(n: u32, kb: u32) -> f32 {
  let byte = n * ((P.kBlocks + 1u) / 2u) + kb / 2u;
  return f32((Z[byte >> 2u] >> ((byte & 3u) * 8u + (kb & 1u) * 4u)) & 15u);
}`
      : `@group(0) @binding(${first + 2}) var<storage, read> Z: array<u32>;
fn zeroAt(n: u32, kb: u32) -> f32 {
  let byte = n * P.kBlocks + kb;
  return f32((Z[byte >> 2u] >> ((byte & 3u) * 8u)) & 255u);
}`
    : `fn zeroAt(n: u32, kb: u32) -> f32 { return ${2 ** (f.bits - 1)}.0; }`;
  return `${fp16PairWgsl(features)}const BITS: u32 = ${f.bits}u;
const VPW: u32 = ${32 / f.bits}u;
const MASK: u32 = ${(1 << f.bits) - 1}u;
const BLOCK: u32 = ${f.block}u;
const WPB: u32 = ${f.block / (32 / f.bits)}u;
@group(0) @binding(${first}) var<storage, read> B: array<u32>;
@group(0) @binding(${first + 1}) var<storage, read> S: array<u32>;
${zero}
fn scaleAt(n: u32, kb: u32) -> f32 { let i = n * P.kBlocks + kb; return fp16Pair(S[i >> 1u])[i & 1u]; }
fn wAt(n: u32, k: u32) -> f32 {
  let kb = k / BLOCK;
  let kin = k % BLOCK;
  let word = B[(n * P.kBlocks + kb) * WPB + kin / VPW];
  let q = (word >> ((kin % VPW) * BITS)) & MASK;
  return (f32(q) - zeroAt(n, kb)) * scaleAt(n, kb);
}
`;
}

function weightBindingCount(f: WeightFormat): number {
  return f.kind === "nbits" ? (f.zeroPoints ? 3 : 2) : 1;
}

export const linearUniforms = uniformLayout([
  ["M", "u32"],
  ["N", "u32"],
  ["K", "u32"],
  ["kBlocks", "u32"],
  ["gridX", "u32"],
  /** Row stride of y and the column of this weight's row 0 in y and bias (a part of a weight split along N). */
  ["yStride", "u32"],
  ["yOffset", "u32"],
] as const);

export const GEMV_WORKGROUP = 256;
/** Lanes per output row at most (K long enough): 32 threads read a row's words side by side. */
export const GEMV_MAX_LANES = 32;

/**
 * Words of a row per lane that set the lanes per row: 8 on a GPU (32 lanes read a 2048-wide int4 row side by side:
 * coalesced); 64 on a CPU-emulated adapter (SwiftShader), where each invocation and barrier costs far more than a
 * memory transaction (8192 × 2048 int4 GEMV: 332 ms with 32 lanes, 103 ms with 4, same run).
 */
export const GEMV_WORDS_PER_LANE = { gpu: 8, cpu: 64 } as const;

/**
 * Threads per output row for a K-long row: one lane per ~8 words (u32 of codes, or f32 values / 8), a power of two in
 * 1..32. Long rows (Qwen2.5-VL-3B's K = 2048: 256 int4 words) get 32 lanes reading side by side; short rows (a
 * 64-wide hidden state: 8 words) get one thread each — no reduction, no barrier, and adjacent threads still read
 * adjacent bytes since rows are contiguous — instead of 32 lanes of which 24 idle through five barriers.
 */
export function gemvLanes(f: WeightFormat, k: number, wordsPerLane: number = GEMV_WORDS_PER_LANE.gpu): number {
  const words = f.kind === "nbits" ? Math.ceil(k / (32 / f.bits)) : Math.ceil(k / 4);
  let lanes = 1;
  while (lanes < GEMV_MAX_LANES && lanes * wordsPerLane < words) lanes *= 2;
  return lanes;
}

/**
 * Bindings: 0 params, 1 x [M, K], 2.. weights, then bias [N] (when `bias`), then y [M, N]. `lanes` threads share a row
 * (gemvLanes); a workgroup computes 256 / lanes rows.
 */
export function createGemvProgram(f: WeightFormat, bias: boolean, lanes: number = GEMV_MAX_LANES): KernelProgram {
  if (!Number.isInteger(Math.log2(lanes)) || lanes < 1 || lanes > GEMV_MAX_LANES) throw new KernelInputError(`GEMV lanes must be a power of two in 1..${GEMV_MAX_LANES}, got ${lanes}`);
  const rows = GEMV_WORKGROUP / lanes;
  const wb = 2;
  const biasB = wb + weightBindingCount(f);
  const yB = biasB + (bias ? 1 : 0);
  const vpw = f.kind === "nbits" ? 32 / f.bits : 0;
  const fullWord =
    f.kind === "nbits"
      ? `        var qx = 0.0;
        var sx = 0.0;
${Array.from({ length: vpw }, (_, i) => `        { let xv = x[xb + ${i}u]; qx += f32((word >> ${i * f.bits}u) & MASK) * xv; sx += xv; }`).join("\n")}
        dot = qx - z * sx;`
      : "";
  // Quantized rows are walked word by word (one scale/zero per word); dense rows element by element.
  const accumulate =
    f.kind === "nbits"
      ? `    let rowWords = P.kBlocks * WPB;
    let wbase = n * rowWords;
    for (var w = lane; w < rowWords; w += LANES) {
      let kb = w / WPB;
      let word = B[wbase + w];
      let z = zeroAt(n, kb);
      let k0 = w * VPW;
      var dot = 0.0;
      if (k0 + VPW <= P.K) {
        // Unrolled: Σ q_i·x_i − z·Σ x_i with constant shifts.
        let xb = xo + k0;
${fullWord}
      } else {
        for (var i = 0u; i < VPW; i++) {
          if (k0 + i < P.K) { dot += (f32((word >> (i * BITS)) & MASK) - z) * x[xo + k0 + i]; }
        }
      }
      acc += dot * scaleAt(n, kb);
    }`
      : `    for (var k = lane; k < P.K; k += LANES) { acc += wAt(n, k) * x[xo + k]; }`;
  return {
    name: "linear-gemv",
    cacheHint: `${formatHint(f)}-${bias ? "bias" : "nobias"}-wg${GEMV_WORKGROUP}-l${lanes}`,
    workgroupSize: GEMV_WORKGROUP,
    getShaderSource: (features) => `${shaderPreamble(features)}
${linearUniforms.wgsl}
const LANES: u32 = ${lanes}u;
const ROWS: u32 = ${rows}u;
@group(0) @binding(1) var<storage, read> x: array<f32>;
${weightReaderWgsl(f, wb, features)}
${bias ? `@group(0) @binding(${biasB}) var<storage, read> bias: array<f32>;` : ""}
@group(0) @binding(${yB}) var<storage, read_write> y: array<f32>;
${lanes === 1 ? "" : `var<workgroup> part: array<f32, ${GEMV_WORKGROUP}>;`}

@compute @workgroup_size(${GEMV_WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let r = t / LANES;
  let lane = t % LANES;
  let n = (wid.y * P.gridX + wid.x) * ROWS + r;
  let m = wid.z;
  let xo = m * P.K;
  var acc = 0.0;
  if (n < P.N) {
${accumulate}
  }
${
  lanes === 1
    ? `  if (n < P.N) {
    y[m * P.yStride + P.yOffset + n] = acc${bias ? " + bias[P.yOffset + n]" : ""};
  }`
    : `  part[t] = acc;
  workgroupBarrier();
  for (var s = LANES / 2u; s > 0u; s = s >> 1u) {
    if (lane < s) { part[t] += part[t + s]; }
    workgroupBarrier();
  }
  if (lane == 0u && n < P.N) {
    y[m * P.yStride + P.yOffset + n] = part[t]${bias ? " + bias[P.yOffset + n]" : ""};
  }`
}
}
`,
  };
}

/** Output tile of one GEMM workgroup (rows of x × rows of W). */
export const GEMM_TILE = 64;
/** K per shared-memory step (inside one quantization block: blocks are multiples of 32). */
const GEMM_TK = 16;
/**
 * Outputs per thread along each side of the tile: 4 (256 threads, 4×4 each) on a GPU; 8 (64 threads, 8×8 each) on a
 * CPU adapter, where fewer, longer invocations win (see gemmThreads).
 */
export type GemmBlocking = 4 | 8;

/** Threads of a GEMM workgroup for a blocking. */
export function gemmThreads(blocking: GemmBlocking): number {
  return (GEMM_TILE / blocking) ** 2;
}

/**
 * Same bindings as GEMV. Grid (⌈N/64⌉, ⌈M/64⌉). Each K step stages a 64×16 tile of x and of W (dequantized once) in
 * workgroup memory (8.7 KB); each thread then accumulates a b×b block of outputs (rows tr + (64/b)·i, columns
 * tc + (64/b)·j: global writes stay coalesced), 2b shared loads per b² FMAs.
 */
export function createGemmProgram(f: WeightFormat, bias: boolean, blocking: GemmBlocking = 4): KernelProgram {
  const wb = 2;
  const biasB = wb + weightBindingCount(f);
  const yB = biasB + (bias ? 1 : 0);
  const b = blocking;
  const side = GEMM_TILE / b;
  const wg = gemmThreads(b);
  const loadW =
    f.kind === "nbits"
      ? `    for (var i = t; i < TN * (TK / VPW); i += WG) {
      let r = i / (TK / VPW);
      let wi = i % (TK / VPW);
      let n = n0 + r;
      let kb = k0 / BLOCK;
      var word = 0u;
      var z = 0.0;
      var s = 0.0;
      if (n < P.N) {
        word = B[(n * P.kBlocks + kb) * WPB + (k0 % BLOCK) / VPW + wi];
        z = zeroAt(n, kb);
        s = scaleAt(n, kb);
      }
      for (var j = 0u; j < VPW; j++) {
        let c = wi * VPW + j;
        ws[r * TKP + c] = select(0.0, (f32((word >> (j * BITS)) & MASK) - z) * s, k0 + c < P.K);
      }
    }`
      : `    for (var i = t; i < TN * TK; i += WG) {
      let r = i / TK;
      let c = i % TK;
      let n = n0 + r;
      var v = 0.0;
      if (n < P.N && k0 + c < P.K) { v = wAt(n, k0 + c); }
      ws[r * TKP + c] = v;
    }`;
  const quads = b / 4;
  const decl = Array.from({ length: b }, (_, i) => Array.from({ length: quads }, (_, q) => `  var acc${i}_${q} = vec4<f32>(0.0);`).join("\n")).join("\n");
  const vec = (name: string, base: string, q: number) =>
    `let ${name}${q} = vec4<f32>(${[0, 1, 2, 3].map((c) => `${name === "xv" ? "xs" : "ws"}[(${base} + ${side * (4 * q + c)}u) * TKP + kk]`).join(", ")});`;
  const inner = [
    ...Array.from({ length: quads }, (_, q) => `      ${vec("xv", "tr", q)}`),
    ...Array.from({ length: quads }, (_, q) => `      ${vec("wv", "tc", q)}`),
    ...Array.from({ length: b }, (_, i) => Array.from({ length: quads }, (_, q) => `      acc${i}_${q} += xv${Math.floor(i / 4)}.${"xyzw"[i % 4]} * wv${q};`).join("\n")),
  ].join("\n");
  const store = Array.from({ length: b }, (_, i) =>
    Array.from({ length: b }, (_, j) => {
      const v = `acc${i}_${Math.floor(j / 4)}.${"xyzw"[j % 4]}`;
      return `  { let m = m0 + tr + ${side * i}u; let n = n0 + tc + ${side * j}u; if (m < P.M && n < P.N) { y[m * P.yStride + P.yOffset + n] = ${v}${bias ? " + bias[P.yOffset + n]" : ""}; } }`;
    }).join("\n"),
  ).join("\n");
  return {
    name: "linear-gemm",
    cacheHint: `${formatHint(f)}-${bias ? "bias" : "nobias"}-t${GEMM_TILE}x${GEMM_TK}-b${b}`,
    workgroupSize: wg,
    getShaderSource: (features) => `${shaderPreamble(features)}
${linearUniforms.wgsl}
const TM: u32 = ${GEMM_TILE}u;
const TN: u32 = ${GEMM_TILE}u;
const TK: u32 = ${GEMM_TK}u;
const TKP: u32 = ${GEMM_TK + 1}u;
const WG: u32 = ${wg}u;
@group(0) @binding(1) var<storage, read> x: array<f32>;
${weightReaderWgsl(f, wb, features)}
${bias ? `@group(0) @binding(${biasB}) var<storage, read> bias: array<f32>;` : ""}
@group(0) @binding(${yB}) var<storage, read_write> y: array<f32>;
var<workgroup> xs: array<f32, ${GEMM_TILE * (GEMM_TK + 1)}>;
var<workgroup> ws: array<f32, ${GEMM_TILE * (GEMM_TK + 1)}>;

@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let n0 = wid.x * TN;
  let m0 = wid.y * TM;
  let tr = t / ${side}u;
  let tc = t % ${side}u;
${decl}
  for (var k0 = 0u; k0 < P.K; k0 += TK) {
    for (var i = t; i < TM * TK; i += WG) {
      let r = i / TK;
      let c = i % TK;
      var v = 0.0;
      if (m0 + r < P.M && k0 + c < P.K) { v = x[(m0 + r) * P.K + k0 + c]; }
      xs[r * TKP + c] = v;
    }
${loadW}
    workgroupBarrier();
    for (var kk = 0u; kk < TK; kk++) {
${inner}
    }
    workgroupBarrier();
  }
${store}
}
`,
  };
}

/** Below this many rows the GEMV (weights read once per row of x) beats the tiled GEMM. */
export const GEMV_MAX_ROWS = 4;

/**
 * The dispatch of y[M, N] = x[M, K]·Wᵀ (+ bias): GEMV when M ≤ GEMV_MAX_ROWS (or `kernel: "gemv"`), else tiled GEMM.
 * `x`, `bias`, `y` are storage buffers the caller owns.
 */
export function linearCall(
  ctx: GpuContext,
  w: GpuWeights,
  x: GPUBuffer,
  m: number,
  y: GPUBuffer,
  bias: GPUBuffer | null = null,
  kernel: "auto" | "gemv" | "gemm" = "auto",
  placement: { readonly yStride: number; readonly yOffset: number } = { yStride: w.n, yOffset: 0 },
): KernelCall {
  const { yStride, yOffset } = placement;
  if (!Number.isInteger(m) || m < 1) throw new KernelInputError(`row count M must be a positive integer, got ${m}`);
  if (!Number.isInteger(yOffset) || yOffset < 0 || yOffset + w.n > yStride) throw new KernelInputError(`columns [${yOffset}, ${yOffset + w.n}) do not fit a y row of ${yStride}`);
  if (x.size < m * w.k * 4) throw new KernelInputError(`x holds ${x.size} bytes; [${m}, ${w.k}] f32 needs ${m * w.k * 4}`);
  if (y.size < m * yStride * 4) throw new KernelInputError(`y holds ${y.size} bytes; [${m}, ${yStride}] f32 needs ${m * yStride * 4}`);
  if (bias && bias.size < (yOffset + w.n) * 4) throw new KernelInputError(`bias holds ${bias.size} bytes; needs ${(yOffset + w.n) * 4}`);
  const gemv = kernel === "gemv" || (kernel === "auto" && m <= GEMV_MAX_ROWS);
  const kBlocks = w.format.kind === "nbits" ? kBlocksOf(w.k, w.format.block) : 0;
  const maxDim = ctx.device.limits.maxComputeWorkgroupsPerDimension;
  const buffers = [x, ...w.buffers, ...(bias ? [bias] : []), y];
  if (gemv) {
    if (m > maxDim) throw new KernelInputError(`GEMV takes at most ${maxDim} rows, got ${m}`);
    const lanes = gemvLanes(w.format, w.k, ctx.cpuAdapter ? GEMV_WORDS_PER_LANE.cpu : GEMV_WORDS_PER_LANE.gpu);
    const [gx, gy] = normalizeDispatch(Math.ceil(w.n / (GEMV_WORKGROUP / lanes)), maxDim);
    return {
      program: createGemvProgram(w.format, bias !== null, lanes),
      uniforms: linearUniforms.pack({ M: m, N: w.n, K: w.k, kBlocks, gridX: gx, yStride, yOffset }),
      buffers,
      grid: [gx, gy, m],
    };
  }
  const gx = Math.ceil(w.n / GEMM_TILE);
  const gy = Math.ceil(m / GEMM_TILE);
  if (gx > maxDim || gy > maxDim) throw new KernelInputError(`GEMM grid ${gx}×${gy} passes the ${maxDim} workgroups-per-dimension limit`);
  return {
    program: createGemmProgram(w.format, bias !== null, ctx.cpuAdapter ? 8 : 4),
    uniforms: linearUniforms.pack({ M: m, N: w.n, K: w.k, kBlocks, gridX: gx, yStride, yOffset }),
    buffers,
    grid: [gx, gy, 1],
  };
}

/** Rows [start, start + count) of a weight, as a weight of its own (same layout; views, no copy). */
export function weightRows(w: LinearWeights, start: number, count: number): LinearWeights {
  if (!Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 1 || start + count > w.n) {
    throw new KernelInputError(`rows [${start}, ${start + count}) are outside the weight's ${w.n}`);
  }
  if (w.kind === "f32") return { kind: "f32", n: count, k: w.k, data: w.data.subarray(start * w.k, (start + count) * w.k) };
  if (w.kind === "f16") return { kind: "f16", n: count, k: w.k, data: w.data.subarray(start * w.k, (start + count) * w.k) };
  const kb = kBlocksOf(w.k, w.block);
  const rowBytes = kb * ((w.block * w.bits) / 8);
  const zs = zeroPointStride(w.bits, kb);
  return {
    ...w,
    n: count,
    data: w.data.subarray(start * rowBytes, (start + count) * rowBytes),
    scales: w.scales.subarray(start * kb, (start + count) * kb),
    zeroPoints: w.zeroPoints?.subarray(start * zs, (start + count) * zs),
  };
}

/** A weight uploaded as row ranges (parts) so that no tensor passes the binding limit; y is written as one [M, N]. */
export interface SplitGpuWeights {
  readonly n: number;
  readonly k: number;
  readonly parts: ReadonlyArray<{ readonly rowStart: number; readonly weights: GpuWeights }>;
  readonly bytes: number;
  destroy(): void;
}

/**
 * Uploads `w` in as few row ranges as keep every tensor within `maxBindingBytes` (default: the device's
 * maxStorageBufferBindingSize) — e.g. a 151,936-row int4 LM head in two parts under the default 128 MiB.
 */
export function uploadWeightsSplit(ctx: GpuContext, w: LinearWeights, label = "weights", maxBindingBytes = ctx.device.limits.maxStorageBufferBindingSize): SplitGpuWeights {
  validateWeights(w);
  const rowBytes = w.data.byteLength / w.n;
  const rowsPerPart = Math.floor(maxBindingBytes / rowBytes);
  if (rowsPerPart < 1) throw new KernelInputError(`${label}: one row (${rowBytes} bytes) passes the binding limit ${maxBindingBytes}`);
  const parts: Array<{ rowStart: number; weights: GpuWeights }> = [];
  try {
    for (let start = 0; start < w.n; start += rowsPerPart) {
      parts.push({ rowStart: start, weights: uploadWeights(ctx, weightRows(w, start, Math.min(rowsPerPart, w.n - start)), `${label}-rows${start}`) });
    }
  } catch (e) {
    parts.forEach((p) => p.weights.destroy());
    throw e;
  }
  return { n: w.n, k: w.k, parts, bytes: parts.reduce((s, p) => s + p.weights.bytes, 0), destroy: () => parts.forEach((p) => p.weights.destroy()) };
}

/** One call per part, each writing its columns of y [M, N] (and reading its slice of bias). */
export function linearSplitCalls(ctx: GpuContext, w: SplitGpuWeights, x: GPUBuffer, m: number, y: GPUBuffer, bias: GPUBuffer | null = null, kernel: "auto" | "gemv" | "gemm" = "auto"): KernelCall[] {
  return w.parts.map((p) => linearCall(ctx, p.weights, x, m, y, bias, kernel, { yStride: w.n, yOffset: p.rowStart }));
}

/** Convenience for tests and one-off use: uploads x (and bias), runs one linear and reads y back. */
export async function runLinear(
  ctx: GpuContext,
  w: GpuWeights,
  x: Float32Array,
  m: number,
  opts: { bias?: Float32Array; kernel?: "auto" | "gemv" | "gemm"; poison?: boolean } = {},
): Promise<Float32Array> {
  if (x.length !== m * w.k) throw new KernelInputError(`x has ${x.length} values; [${m}, ${w.k}] needs ${m * w.k}`);
  if (opts.bias && opts.bias.length !== w.n) throw new KernelInputError(`bias has ${opts.bias.length} values; needs ${w.n}`);
  const xb = uploadBuffer(ctx, "linear-x", x);
  const bb = opts.bias ? uploadBuffer(ctx, "linear-bias", opts.bias) : null;
  const yb = ctx.storageBuffer("linear-y", m * w.n * 4);
  try {
    if (opts.poison) ctx.poison(yb);
    await submitCalls(ctx, [linearCall(ctx, w, xb, m, yb, bb, opts.kernel ?? "auto")], "linear");
    return await ctx.readFloat32(yb, 0, m * w.n);
  } finally {
    xb.destroy();
    bb?.destroy();
    yb.destroy();
  }
}
