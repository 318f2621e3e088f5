// The Qwen2.5-VL vision tower on WebGPU: executes the CPU tower's plan (qwen2_5_vl-vision.ts: window index, segments,
// op list) with the model kernels, all of it in one submission, reading back only the merged embeddings.
//
//   patch_embed       GEMM pixels [N, C·T·P·P] × Conv3d kernel [D, C·T·P·P]ᵀ (kernel = stride: the conv is a matmul)
//   window_permute    gather rows by the plan's window index (expanded from merge groups to patch rows)
//   attention_block   RMSNorm → q, k (one [N, 2D] buffer) and v GEMMs with bias → vision 2-D rotary on q and k
//                     (kernels/rotary.ts, positions = the permuted patch rows and columns) → segment attention
//                     (kernels/vision-attention.ts; window or full segments as per-row bounds) → proj GEMM + bias → add
//   mlp_block         RMSNorm → gate, up GEMMs + bias → SwiGLU → down GEMM + bias → add
//   patch_merger      RMSNorm → [N/m², D·m²] view → fc1 + bias → exact GELU → fc2 + bias
//   window_unpermute  gather rows by the inverse window index
//
// Weights: every Linear (and the patch kernel) as f32, f16 or MatMulNBits int8/int4 (kernels/matmul-nbits.ts: the
// bundle's bytes); norms and biases f32. `visionSourceFromF32` derives f16/int8 weights from f32 ones with the bundle
// packer's quantizer (checkpoint/bundle/matmul-nbits.ts), `visionSourceFromBundle` reads a loaded bundle's tensors.
import { qwen25VisionTensorNames, type Qwen25VisionConfig } from "../../checkpoint/families/qwen2_5_vl.ts";
import type { BundleManifest } from "../../checkpoint/bundle/manifest.ts";
import { quantizeMatMulNBits, type QuantBlock } from "../../checkpoint/bundle/matmul-nbits.ts";
import { f16ToF32, f32ToF16Bits } from "../../format/codec/fp16.ts";
import type { GpuContext } from "../../kernels/gpu-context.ts";
import { recordCalls, uploadBuffer, type KernelCall } from "../../kernels/dispatch.ts";
import { linearCall, uploadWeights, weightRows, type GpuWeights, type LinearWeights } from "../../kernels/matmul-nbits.ts";
import { gatherRowsCall, geluCall, residualAddCall, rmsNormCall, swigluCall } from "../../kernels/norm-act.ts";
import { rotaryCall, uploadRotary, type GpuRotary } from "../../kernels/rotary.ts";
import { visionRotaryTables } from "../../kernels/rotary.ref.ts";
import { visionAttentionCall } from "../../kernels/vision-attention.ts";
import { segmentBounds } from "../../kernels/vision-attention.ref.ts";
import { VisionError, type Qwen25VisionPlan, type VisionGrid, type VisionWeights } from "./qwen2_5_vl-vision.ts";

/** Where the GPU tower gets its tensors: Linear weights in a kernel layout, vectors (norms, biases) as f32. */
export interface VisionWeightSource {
  /** Weight [n, k] of a Linear (the Conv3d kernel flattened to [D, C·T·P·P]). */
  linear(name: string, n: number, k: number): LinearWeights;
  vector(name: string, length: number): Float32Array;
}

export type VisionGpuFormat = "f32" | "f16" | "int8";

function need<T>(v: T | undefined, name: string): T {
  if (v === undefined) throw new VisionError("missing_weight", `vision weight ${name} is not loaded`);
  return v;
}

function checkLength(name: string, got: number, want: number): void {
  if (got !== want) throw new VisionError("missing_weight", `vision weight ${name} has ${got} values, expected ${want}`);
}

/**
 * f32 tower weights (loadQwen25VisionWeights) as a GPU source: Linear weights kept f32, rounded to f16, or quantized
 * to MatMulNBits int8 with the bundle packer's quantizer (block 32 by default, symmetric unless `zeroPoints`).
 */
export function visionSourceFromF32(weights: VisionWeights, format: VisionGpuFormat, opts: { block?: QuantBlock; zeroPoints?: boolean } = {}): VisionWeightSource {
  return {
    linear(name, n, k) {
      const w = need(weights.get(name), name);
      checkLength(name, w.length, n * k);
      if (format === "f32") return { kind: "f32", n, k, data: w };
      if (format === "f16") return { kind: "f16", n, k, data: Uint16Array.from(w, (x) => f32ToF16Bits(x, "nearest-even")) };
      const q = quantizeMatMulNBits(w, { n, k, bits: 8, block: opts.block ?? 32 }, { zeroPoints: opts.zeroPoints === true });
      return { kind: "nbits", n, k, bits: 8, block: q.block, data: q.b, scales: q.scales, zeroPoints: q.zeroPoints ?? undefined };
    },
    vector(name, length) {
      const w = need(weights.get(name), name);
      checkLength(name, w.length, length);
      return w;
    },
  };
}

/**
 * A loaded bundle's vision tensors as a GPU source: `array(name, part)` returns the bytes of one stored array
 * ("b", "scales", "zeroPoints" of a MatMulNBits entry, "data" of a plain one), e.g. from runtime/loader's tensor router.
 * Plain 2-D+ tensors (f16 vision weights, the Conv3d kernel) become f16 Linear weights; f16 vectors are widened to f32.
 */
export function visionSourceFromBundle(manifest: BundleManifest, array: (name: string, part: "b" | "scales" | "zeroPoints" | "data") => Uint8Array): VisionWeightSource {
  const entries = new Map(manifest.tensors.map((t) => [t.name, t]));
  const u16 = (b: Uint8Array) => new Uint16Array(b.buffer.slice(b.byteOffset, b.byteOffset + (b.byteLength & ~1)));
  return {
    linear(name, n, k) {
      const t = need(entries.get(name), name);
      if (t.kind === "matmul_nbits") {
        if (t.shape[0] !== n || t.shape[1] !== k) throw new VisionError("missing_weight", `vision weight ${name} is [${t.shape.join(", ")}], expected [${n}, ${k}]`);
        // Arrays may come rounded up to whole u32 words (the loader's GPU-ready copies): cut to the exact sizes.
        return {
          kind: "nbits",
          n,
          k,
          bits: t.bits,
          block: t.block,
          data: array(name, "b").subarray(0, t.b.rows * t.b.rowBytes),
          scales: u16(array(name, "scales")).subarray(0, n * t.kBlocks),
          zeroPoints: t.zeroPoints ? array(name, "zeroPoints").subarray(0, t.zeroPoints.rows * t.zeroPoints.rowBytes) : undefined,
        };
      }
      const count = t.shape.reduce((a, b) => a * b, 1);
      checkLength(name, count, n * k);
      const bytes = array(name, "data");
      if (t.dtype === "f16") return { kind: "f16", n, k, data: u16(bytes).subarray(0, n * k) };
      if (t.dtype === "f32") return { kind: "f32", n, k, data: new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + n * k * 4)) };
      throw new VisionError("missing_weight", `vision weight ${name} has dtype ${t.dtype}`);
    },
    vector(name, length) {
      const t = need(entries.get(name), name);
      if (t.kind !== "plain") throw new VisionError("missing_weight", `vision vector ${name} is stored quantized`);
      checkLength(name, t.shape.reduce((a, b) => a * b, 1), length);
      const bytes = array(name, "data");
      if (t.dtype === "f32") return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + length * 4));
      if (t.dtype === "f16") return Float32Array.from(u16(bytes).subarray(0, length), (h) => f16ToF32(h));
      throw new VisionError("missing_weight", `vision vector ${name} has dtype ${t.dtype}`);
    },
  };
}

/** Patch row and column of every patch in the permuted (window) order: stream-major [2 × patches] for the rotary. */
export function qwen25VisionPositions(cfg: Qwen25VisionConfig, grids: readonly VisionGrid[], windowIndex: Int32Array): Int32Array {
  const m = cfg.spatialMergeSize;
  const unit = m * m;
  const rows: number[] = [];
  const cols: number[] = [];
  for (const g of grids) {
    for (let t = 0; t < g.t; t++) {
      for (let bh = 0; bh < g.h / m; bh++) {
        for (let bw = 0; bw < g.w / m; bw++) {
          for (let ih = 0; ih < m; ih++) {
            for (let iw = 0; iw < m; iw++) {
              rows.push(bh * m + ih);
              cols.push(bw * m + iw);
            }
          }
        }
      }
    }
  }
  const n = rows.length;
  const out = new Int32Array(2 * n);
  for (let k = 0; k < windowIndex.length; k++) {
    for (let u = 0; u < unit; u++) {
      out[k * unit + u] = rows[windowIndex[k] * unit + u];
      out[n + k * unit + u] = cols[windowIndex[k] * unit + u];
    }
  }
  return out;
}

interface BlockWeights {
  readonly norm1: GPUBuffer;
  readonly q: GpuWeights;
  readonly k: GpuWeights;
  readonly v: GpuWeights;
  readonly qkvBias: GPUBuffer;
  readonly vBias: GPUBuffer;
  readonly proj: GpuWeights;
  readonly projBias: GPUBuffer;
  readonly norm2: GPUBuffer;
  readonly gate: GpuWeights;
  readonly gateBias: GPUBuffer;
  readonly up: GpuWeights;
  readonly upBias: GPUBuffer;
  readonly down: GpuWeights;
  readonly downBias: GPUBuffer;
}

export interface VisionGpuTiming {
  /** Wall time of the submission (upload of the request's tables and pixels, kernels, readback), ms. */
  readonly ms: number;
}

/** The tower's weights resident on the GPU, ready to run plans of any grid. */
export class Qwen25VisionGpu {
  readonly #ctx: GpuContext;
  readonly config: Qwen25VisionConfig;
  readonly #patch: GpuWeights;
  readonly #blocks: BlockWeights[];
  readonly #mergerNorm: GPUBuffer;
  readonly #fc1: GpuWeights;
  readonly #fc1Bias: GPUBuffer;
  readonly #fc2: GpuWeights;
  readonly #fc2Bias: GPUBuffer;
  readonly #rotary: GpuRotary;
  readonly #owned: Array<{ destroy(): void }>;
  /** Bytes of the weights on the GPU. */
  readonly weightBytes: number;

  private constructor(ctx: GpuContext, cfg: Qwen25VisionConfig, parts: {
    patch: GpuWeights; blocks: BlockWeights[]; mergerNorm: GPUBuffer; fc1: GpuWeights; fc1Bias: GPUBuffer; fc2: GpuWeights; fc2Bias: GPUBuffer; rotary: GpuRotary; owned: Array<{ destroy(): void }>; bytes: number;
  }) {
    this.#ctx = ctx;
    this.config = cfg;
    this.#patch = parts.patch;
    this.#blocks = parts.blocks;
    this.#mergerNorm = parts.mergerNorm;
    this.#fc1 = parts.fc1;
    this.#fc1Bias = parts.fc1Bias;
    this.#fc2 = parts.fc2;
    this.#fc2Bias = parts.fc2Bias;
    this.#rotary = parts.rotary;
    this.#owned = parts.owned;
    this.weightBytes = parts.bytes;
  }

  /** Uploads every tensor of the tower from `source` (names of the checkpoint, `prefix` = "visual." by default). */
  static upload(ctx: GpuContext, cfg: Qwen25VisionConfig, source: VisionWeightSource, prefix = "visual."): Qwen25VisionGpu {
    const names = qwen25VisionTensorNames(prefix, cfg.depth);
    const D = cfg.hiddenSize;
    const F = cfg.intermediateSize;
    const M = D * cfg.spatialMergeSize * cfg.spatialMergeSize;
    const K0 = cfg.inChans * cfg.temporalPatchSize * cfg.patchSize * cfg.patchSize;
    const owned: Array<{ destroy(): void }> = [];
    let bytes = 0;
    const lin = (w: LinearWeights, label: string): GpuWeights => {
      const g = uploadWeights(ctx, w, label);
      owned.push(g);
      bytes += g.bytes;
      return g;
    };
    const vec = (data: Float32Array, label: string): GPUBuffer => {
      const b = uploadBuffer(ctx, label, data);
      owned.push(b);
      bytes += b.size;
      return b;
    };
    try {
      const patch = lin(source.linear(names.patchEmbed, D, K0), "vision-patch");
      const blocks: BlockWeights[] = names.blocks.map((b, i) => {
        const qkv = source.linear(b.qkvWeight, 3 * D, D);
        const qkvBias = source.vector(b.qkvBias, 3 * D);
        return {
          norm1: vec(source.vector(b.norm1, D), `vision-${i}-norm1`),
          q: lin(weightRows(qkv, 0, D), `vision-${i}-q`),
          k: lin(weightRows(qkv, D, D), `vision-${i}-k`),
          v: lin(weightRows(qkv, 2 * D, D), `vision-${i}-v`),
          qkvBias: vec(qkvBias, `vision-${i}-qkv-bias`),
          vBias: vec(qkvBias.subarray(2 * D), `vision-${i}-v-bias`),
          proj: lin(source.linear(b.projWeight, D, D), `vision-${i}-proj`),
          projBias: vec(source.vector(b.projBias, D), `vision-${i}-proj-bias`),
          norm2: vec(source.vector(b.norm2, D), `vision-${i}-norm2`),
          gate: lin(source.linear(b.gateWeight, F, D), `vision-${i}-gate`),
          gateBias: vec(source.vector(b.gateBias, F), `vision-${i}-gate-bias`),
          up: lin(source.linear(b.upWeight, F, D), `vision-${i}-up`),
          upBias: vec(source.vector(b.upBias, F), `vision-${i}-up-bias`),
          down: lin(source.linear(b.downWeight, D, F), `vision-${i}-down`),
          downBias: vec(source.vector(b.downBias, D), `vision-${i}-down-bias`),
        };
      });
      const mergerNorm = vec(source.vector(names.mergerNorm, D), "vision-merger-norm");
      const fc1 = lin(source.linear(names.mergerFc1Weight, M, M), "vision-fc1");
      const fc1Bias = vec(source.vector(names.mergerFc1Bias, M), "vision-fc1-bias");
      const fc2 = lin(source.linear(names.mergerFc2Weight, cfg.outHiddenSize, M), "vision-fc2");
      const fc2Bias = vec(source.vector(names.mergerFc2Bias, cfg.outHiddenSize), "vision-fc2-bias");
      const half = cfg.headDim / 2;
      const rotary = uploadRotary(ctx, visionRotaryTables(cfg.headDim, cfg.ropeTheta), [Array.from({ length: half }, (_, i) => i)]);
      owned.push(rotary);
      return new Qwen25VisionGpu(ctx, cfg, { patch, blocks, mergerNorm, fc1, fc1Bias, fc2, fc2Bias, rotary, owned, bytes });
    } catch (e) {
      owned.forEach((o) => o.destroy());
      throw e;
    }
  }

  /**
   * Runs `plan` on `pixelValues` ([patches × C·T·P·P] f32) in one submission and returns the merged embeddings
   * [tokens × out_hidden_size] in the images' token order — what runQwen25VisionPlan returns on the CPU.
   */
  async run(plan: Qwen25VisionPlan, pixelValues: Float32Array, timing?: (t: VisionGpuTiming) => void): Promise<Float32Array> {
    const t0 = performance.now();
    const ctx = this.#ctx;
    const cfg = this.config;
    if (plan.config.depth !== cfg.depth || plan.config.hiddenSize !== cfg.hiddenSize || plan.config.numHeads !== cfg.numHeads) {
      throw new VisionError("bad_grid", "the plan was made for another vision config");
    }
    const N = plan.patches;
    const D = cfg.hiddenSize;
    const F = cfg.intermediateSize;
    const unit = cfg.spatialMergeSize * cfg.spatialMergeSize;
    const T = N / unit;
    const M = D * unit;
    const O = cfg.outHiddenSize;
    const K0 = this.#patch.k;
    if (pixelValues.length !== N * K0) throw new VisionError("bad_pixels", `pixel_values must hold ${N} × ${K0} values for these grids, got ${pixelValues.length}`);
    const rowIndex = new Uint32Array(N);
    for (let k = 0; k < plan.windowIndex.length; k++) for (let u = 0; u < unit; u++) rowIndex[k * unit + u] = plan.windowIndex[k] * unit + u;
    const inverse = new Uint32Array(T);
    for (let k = 0; k < T; k++) inverse[plan.windowIndex[k]] = k;
    const temp: GPUBuffer[] = [];
    const buf = (label: string, floats: number): GPUBuffer => {
      const b = ctx.storageBuffer(label, floats * 4);
      temp.push(b);
      return b;
    };
    const up = (label: string, data: ArrayBufferView): GPUBuffer => {
      const b = uploadBuffer(ctx, label, data);
      temp.push(b);
      return b;
    };
    let params: GPUBuffer[] = [];
    try {
      const pixels = up("vision-pixels", pixelValues);
      const positions = up("vision-positions", qwen25VisionPositions(cfg, plan.grids, plan.windowIndex));
      const windowBounds = up("vision-window-bounds", segmentBounds(plan.windowSegments, N));
      const fullBounds = up("vision-full-bounds", segmentBounds(plan.fullSegments, N));
      const permute = up("vision-permute", rowIndex);
      const unpermute = up("vision-unpermute", inverse);
      const x = buf("vision-x", N * D);
      const xn = buf("vision-xn", N * D);
      const qk = buf("vision-qk", N * 2 * D);
      const v = buf("vision-v", N * D);
      const attn = buf("vision-attn", N * D);
      const delta = buf("vision-delta", N * Math.max(D, O));
      const gate = buf("vision-gate", N * F);
      const upb = buf("vision-up", N * F);
      const act = buf("vision-act", N * F);
      const h1 = buf("vision-merger-h1", T * M);
      const out = buf("vision-out", T * O);
      const calls: KernelCall[] = [];
      const eps = cfg.rmsNormEps;
      calls.push(linearCall(ctx, this.#patch, pixels, N, delta));
      calls.push(gatherRowsCall(ctx, delta, permute, x, N, D, N));
      const attnLayout = { rows: N, heads: cfg.numHeads, headDim: cfg.headDim, qStride: 2 * D, qOffset: 0, kStride: 2 * D, kOffset: D, vStride: D, vOffset: 0 };
      for (const [i, b] of this.#blocks.entries()) {
        calls.push(rmsNormCall(ctx, x, b.norm1, xn, N, D, eps));
        calls.push(linearCall(ctx, b.q, xn, N, qk, b.qkvBias, "auto", { yStride: 2 * D, yOffset: 0 }));
        calls.push(linearCall(ctx, b.k, xn, N, qk, b.qkvBias, "auto", { yStride: 2 * D, yOffset: D }));
        calls.push(linearCall(ctx, b.v, xn, N, v, b.vBias));
        calls.push(rotaryCall(ctx, this.#rotary, qk, positions, { tokens: N, heads: 2 * cfg.numHeads, headStride: cfg.headDim, offset: 0 }));
        const full = cfg.fullattBlockIndexes.includes(i);
        calls.push(visionAttentionCall(ctx, { q: qk, k: qk, v, bounds: full ? fullBounds : windowBounds, out: attn }, attnLayout));
        calls.push(linearCall(ctx, b.proj, attn, N, delta, b.projBias));
        calls.push(residualAddCall(ctx, x, delta, N * D));
        calls.push(rmsNormCall(ctx, x, b.norm2, xn, N, D, eps));
        calls.push(linearCall(ctx, b.gate, xn, N, gate, b.gateBias));
        calls.push(linearCall(ctx, b.up, xn, N, upb, b.upBias));
        calls.push(swigluCall(ctx, gate, upb, act, { rows: N, width: F }));
        calls.push(linearCall(ctx, b.down, act, N, delta, b.downBias));
        calls.push(residualAddCall(ctx, x, delta, N * D));
      }
      calls.push(rmsNormCall(ctx, x, this.#mergerNorm, xn, N, D, eps));
      calls.push(linearCall(ctx, this.#fc1, xn, T, h1, this.#fc1Bias));
      calls.push(geluCall(ctx, h1, T * M));
      calls.push(linearCall(ctx, this.#fc2, h1, T, delta, this.#fc2Bias));
      calls.push(gatherRowsCall(ctx, delta, unpermute, out, T, O, T));
      const enc = ctx.device.createCommandEncoder({ label: "vision-tower" });
      params = await recordCalls(ctx, enc, calls, "vision-tower");
      ctx.device.queue.submit([enc.finish()]);
      const result = await ctx.readFloat32(out, 0, T * O);
      ctx.throwIfFailed();
      timing?.({ ms: performance.now() - t0 });
      return result;
    } finally {
      params.forEach((p) => p.destroy());
      temp.forEach((b) => b.destroy());
    }
  }

  destroy(): void {
    this.#owned.forEach((o) => o.destroy());
  }
}
