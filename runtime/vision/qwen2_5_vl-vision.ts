// Qwen2.5-VL vision transformer on the CPU (f32 weights, f64 activations): Conv3d patch embedding as a matmul, 2-D
// rotary, window attention (window_size, fullatt_block_indexes) with get_window_index's permutation and
// un-permutation, RMSNorm, SwiGLU MLP with biases, PatchMerger (RMSNorm → Linear → exact GELU → Linear).
//
// The work is written as a plan: a list of ops over named weights (the checkpoint's own tensor names) plus the
// per-request tables (window permutation, attention segments, rotary angles). `runQwen25VisionPlan` executes it here;
// a WebGPU runtime executes the same plan with kernels.

import {
  qwen25VisionTensorNames,
  type Qwen25VisionConfig,
} from "../../checkpoint/families/qwen2_5_vl.ts";
import type { TensorSource } from "../../checkpoint/tensor-source.ts";
import { erf, linear, rmsNorm, softmaxInPlace } from "../ops.ts";
import { MlaError } from "../../format/errors.ts";

export class VisionError extends MlaError<"bad_grid" | "bad_pixels" | "missing_weight"> {
  override readonly name = "VisionError";
  constructor(
    code: "bad_grid" | "bad_pixels" | "missing_weight",
    message: string,
  ) {
    super(code, message);
  }
}

/** `image_grid_thw` of one image: patches along time, height and width. */
export interface VisionGrid {
  readonly t: number;
  readonly h: number;
  readonly w: number;
}

/** One step of the tower. Every op reads and writes the running hidden state `x` ([rows × width]). */
export type VisionOp =
  /** x = pixels · W^T, W the Conv3d kernel [D, C·T·P·P] (kernel = stride, so the conv is one matmul). */
  | { readonly op: "patch_embed"; readonly weight: string }
  /** Reorders x by groups of merge² rows: group k of the result is group windowIndex[k] of the input. */
  | { readonly op: "window_permute" }
  /** x += proj(attention(rope(qkv(rmsnorm(x))))) within the plan's `window` or `full` segments. */
  | {
      readonly op: "attention_block";
      readonly norm: string;
      readonly qkvWeight: string;
      readonly qkvBias: string;
      readonly projWeight: string;
      readonly projBias: string;
      readonly segments: "window" | "full";
    }
  /** x += down(silu(gate(rmsnorm(x))) ⊙ up(rmsnorm(x))), all three Linear with bias. */
  | {
      readonly op: "mlp_block";
      readonly norm: string;
      readonly gateWeight: string;
      readonly gateBias: string;
      readonly upWeight: string;
      readonly upBias: string;
      readonly downWeight: string;
      readonly downBias: string;
    }
  /** x = fc2(gelu(fc1(rmsnorm(x) viewed as [rows/m² × D·m²]))): one row per merged token. */
  | {
      readonly op: "patch_merger";
      readonly norm: string;
      readonly fc1Weight: string;
      readonly fc1Bias: string;
      readonly fc2Weight: string;
      readonly fc2Bias: string;
    }
  /** Row windowIndex[k] of the result is row k of the input (undoes window_permute at merged-token level). */
  | { readonly op: "window_unpermute" };

export interface Qwen25VisionPlan {
  readonly config: Qwen25VisionConfig;
  readonly grids: readonly VisionGrid[];
  /** Patches (rows of pixel_values). */
  readonly patches: number;
  /** Merged tokens (rows of the output). */
  readonly tokens: number;
  /** get_window_index: merged-token group order, over all images. */
  readonly windowIndex: Int32Array;
  /** cu_window_seqlens after unique_consecutive, in patch rows of the permuted order. */
  readonly windowSegments: Int32Array;
  /** cu_seqlens: one segment per frame of each image. */
  readonly fullSegments: Int32Array;
  /** Rotary angle per (permuted patch row, pair): [patches × head_dim/2]. */
  readonly angles: Float64Array;
  readonly ops: readonly VisionOp[];
}

function checkGrids(cfg: Qwen25VisionConfig, grids: readonly VisionGrid[]): void {
  if (grids.length === 0) throw new VisionError("bad_grid", "the vision tower needs at least one image grid");
  const m = cfg.spatialMergeSize;
  for (const [i, g] of grids.entries()) {
    for (const v of [g.t, g.h, g.w]) {
      if (!Number.isSafeInteger(v) || v < 1) throw new VisionError("bad_grid", `grid ${i} [${g.t}, ${g.h}, ${g.w}] must hold positive integers`);
    }
    if (g.h % m !== 0 || g.w % m !== 0) {
      throw new VisionError("bad_grid", `grid ${i} [${g.t}, ${g.h}, ${g.w}]: h and w must be multiples of spatial_merge_size ${m}`);
    }
  }
}

/** get_window_index of the HF code: merged-token order window by window, and window lengths in patch rows. */
export function qwen25WindowIndex(cfg: Qwen25VisionConfig, grids: readonly VisionGrid[]): { windowIndex: Int32Array; windowSegments: Int32Array } {
  const m = cfg.spatialMergeSize;
  const unit = m * m;
  const ws = cfg.windowSize / m / cfg.patchSize;
  const index: number[] = [];
  const cu: number[] = [0];
  let base = 0;
  for (const g of grids) {
    const lh = g.h / m;
    const lw = g.w / m;
    // HF pads by ws − n % ws (a whole empty window when n % ws = 0); empty windows vanish in unique_consecutive.
    const nwh = Math.ceil((lh + ws - (lh % ws)) / ws);
    const nww = Math.ceil((lw + ws - (lw % ws)) / ws);
    for (let t = 0; t < g.t; t++) {
      for (let wh = 0; wh < nwh; wh++) {
        for (let ww = 0; ww < nww; ww++) {
          let count = 0;
          for (let r = wh * ws; r < Math.min((wh + 1) * ws, lh); r++) {
            for (let c = ww * ws; c < Math.min((ww + 1) * ws, lw); c++) {
              index.push(base + t * lh * lw + r * lw + c);
              count++;
            }
          }
          const next = cu[cu.length - 1] + count * unit;
          if (next !== cu[cu.length - 1]) cu.push(next);
        }
      }
    }
    base += g.t * lh * lw;
  }
  return { windowIndex: Int32Array.from(index), windowSegments: Int32Array.from(cu) };
}

/**
 * Rotary angles of each patch in pixel_values order (2×2 merge groups): pair i < head_dim/4 turns with the patch's row,
 * the next head_dim/4 pairs with its column; inv_freq_j = θ^(−2j / (head_dim/2)).
 */
export function qwen25VisionAngles(cfg: Qwen25VisionConfig, grids: readonly VisionGrid[]): Float64Array {
  const half = cfg.headDim / 2;
  const quarter = half / 2;
  const inv = new Float64Array(quarter);
  for (let j = 0; j < quarter; j++) inv[j] = 1 / Math.pow(cfg.ropeTheta, (2 * j) / half);
  const m = cfg.spatialMergeSize;
  const total = grids.reduce((s, g) => s + g.t * g.h * g.w, 0);
  const angles = new Float64Array(total * half);
  let row = 0;
  for (const g of grids) {
    for (let t = 0; t < g.t; t++) {
      for (let bh = 0; bh < g.h / m; bh++) {
        for (let bw = 0; bw < g.w / m; bw++) {
          for (let ih = 0; ih < m; ih++) {
            for (let iw = 0; iw < m; iw++) {
              const hp = bh * m + ih;
              const wp = bw * m + iw;
              const o = row * half;
              for (let j = 0; j < quarter; j++) {
                angles[o + j] = hp * inv[j];
                angles[o + quarter + j] = wp * inv[j];
              }
              row++;
            }
          }
        }
      }
    }
  }
  return angles;
}

/** The tower's plan for a request of `grids` (all images of a turn, in prompt order). */
export function planQwen25Vision(cfg: Qwen25VisionConfig, grids: readonly VisionGrid[], prefix = "visual."): Qwen25VisionPlan {
  checkGrids(cfg, grids);
  const unit = cfg.spatialMergeSize * cfg.spatialMergeSize;
  const half = cfg.headDim / 2;
  const { windowIndex, windowSegments } = qwen25WindowIndex(cfg, grids);
  const patches = grids.reduce((s, g) => s + g.t * g.h * g.w, 0);
  // Rotary angles follow the rows through the window permutation.
  const raw = qwen25VisionAngles(cfg, grids);
  const angles = new Float64Array(raw.length);
  for (let k = 0; k < windowIndex.length; k++) {
    angles.set(raw.subarray(windowIndex[k] * unit * half, (windowIndex[k] + 1) * unit * half), k * unit * half);
  }
  const full: number[] = [0];
  for (const g of grids) for (let t = 0; t < g.t; t++) full.push(full[full.length - 1] + g.h * g.w);
  const names = qwen25VisionTensorNames(prefix, cfg.depth);
  const ops: VisionOp[] = [{ op: "patch_embed", weight: names.patchEmbed }, { op: "window_permute" }];
  for (let i = 0; i < cfg.depth; i++) {
    const b = names.blocks[i];
    ops.push({
      op: "attention_block",
      norm: b.norm1,
      qkvWeight: b.qkvWeight,
      qkvBias: b.qkvBias,
      projWeight: b.projWeight,
      projBias: b.projBias,
      segments: cfg.fullattBlockIndexes.includes(i) ? "full" : "window",
    });
    ops.push({
      op: "mlp_block",
      norm: b.norm2,
      gateWeight: b.gateWeight,
      gateBias: b.gateBias,
      upWeight: b.upWeight,
      upBias: b.upBias,
      downWeight: b.downWeight,
      downBias: b.downBias,
    });
  }
  ops.push({
    op: "patch_merger",
    norm: names.mergerNorm,
    fc1Weight: names.mergerFc1Weight,
    fc1Bias: names.mergerFc1Bias,
    fc2Weight: names.mergerFc2Weight,
    fc2Bias: names.mergerFc2Bias,
  });
  ops.push({ op: "window_unpermute" });
  return {
    config: cfg,
    grids,
    patches,
    tokens: patches / unit,
    windowIndex,
    windowSegments,
    fullSegments: Int32Array.from(full),
    angles,
    ops,
  };
}

/** Expected shape of every tensor the tower reads, by name. */
export function qwen25VisionWeightShapes(cfg: Qwen25VisionConfig, prefix = "visual."): Map<string, number[]> {
  const n = qwen25VisionTensorNames(prefix, cfg.depth);
  const D = cfg.hiddenSize;
  const F = cfg.intermediateSize;
  const M = D * cfg.spatialMergeSize * cfg.spatialMergeSize;
  const P = cfg.patchSize;
  const s = new Map<string, number[]>([[n.patchEmbed, [D, cfg.inChans, cfg.temporalPatchSize, P, P]]]);
  for (const b of n.blocks) {
    s.set(b.norm1, [D]).set(b.norm2, [D]);
    s.set(b.qkvWeight, [3 * D, D]).set(b.qkvBias, [3 * D]).set(b.projWeight, [D, D]).set(b.projBias, [D]);
    s.set(b.gateWeight, [F, D]).set(b.gateBias, [F]).set(b.upWeight, [F, D]).set(b.upBias, [F]);
    s.set(b.downWeight, [D, F]).set(b.downBias, [D]);
  }
  s.set(n.mergerNorm, [D]).set(n.mergerFc1Weight, [M, M]).set(n.mergerFc1Bias, [M]);
  s.set(n.mergerFc2Weight, [cfg.outHiddenSize, M]).set(n.mergerFc2Bias, [cfg.outHiddenSize]);
  return s;
}

/** Named f32 weights of the tower (the checkpoint's names → values). */
export type VisionWeights = ReadonlyMap<string, Float32Array>;

/** Reads the tower's tensors one by one (shape-checked) from a lazy source. */
export async function loadQwen25VisionWeights(src: TensorSource, cfg: Qwen25VisionConfig, prefix = "visual."): Promise<VisionWeights> {
  const out = new Map<string, Float32Array>();
  for (const [name, shape] of qwen25VisionWeightShapes(cfg, prefix)) out.set(name, await src.readFloat32(name, shape));
  return out;
}

function weight(w: VisionWeights, name: string): Float32Array {
  const v = w.get(name);
  if (v === undefined) throw new VisionError("missing_weight", `vision weight ${name} is not loaded`);
  return v;
}

/** Non-causal multi-head attention within segments, rotary on q and k (pairs (i, i + head_dim/2)). */
function segmentAttention(
  qkv: Float64Array,
  rows: number,
  cfg: Qwen25VisionConfig,
  angles: Float64Array,
  segments: Int32Array,
  out: Float64Array,
): void {
  const D = cfg.hiddenSize;
  const nh = cfg.numHeads;
  const dh = cfg.headDim;
  const half = dh / 2;
  // rotate q and k in place
  for (let r = 0; r < rows; r++) {
    for (const part of [0, 1]) {
      for (let h = 0; h < nh; h++) {
        const o = r * 3 * D + part * D + h * dh;
        for (let i = 0; i < half; i++) {
          const a = angles[r * half + i];
          const c = Math.cos(a);
          const s = Math.sin(a);
          const x1 = qkv[o + i];
          const x2 = qkv[o + i + half];
          qkv[o + i] = x1 * c - x2 * s;
          qkv[o + i + half] = x2 * c + x1 * s;
        }
      }
    }
  }
  const scale = 1 / Math.sqrt(dh);
  let maxLen = 0;
  for (let s = 1; s < segments.length; s++) maxLen = Math.max(maxLen, segments[s] - segments[s - 1]);
  const p = new Float64Array(maxLen);
  out.fill(0, 0, rows * D);
  for (let s = 1; s < segments.length; s++) {
    const a = segments[s - 1];
    const len = segments[s] - a;
    for (let i = a; i < a + len; i++) {
      for (let h = 0; h < nh; h++) {
        const qo = i * 3 * D + h * dh;
        for (let j = 0; j < len; j++) {
          const ko = (a + j) * 3 * D + D + h * dh;
          let dot = 0;
          for (let e = 0; e < dh; e++) dot += qkv[qo + e] * qkv[ko + e];
          p[j] = dot * scale;
        }
        softmaxInPlace(p, len);
        const oo = i * D + h * dh;
        for (let j = 0; j < len; j++) {
          const vo = (a + j) * 3 * D + 2 * D + h * dh;
          const pj = p[j];
          for (let e = 0; e < dh; e++) out[oo + e] += pj * qkv[vo + e];
        }
      }
    }
  }
}

/**
 * Runs the plan on `pixelValues` ([patches × C·T·P·P] f32, the processor's order) and returns the merged embeddings
 * [tokens × out_hidden_size] in the images' original token order (what replaces their `<|image_pad|>` tokens).
 */
export function runQwen25VisionPlan(plan: Qwen25VisionPlan, weights: VisionWeights, pixelValues: Float32Array, linearOp: LinearOp = linear): Float32Array {
  const linear = linearOp;
  const cfg = plan.config;
  const N = plan.patches;
  const D = cfg.hiddenSize;
  const F = cfg.intermediateSize;
  const unit = cfg.spatialMergeSize * cfg.spatialMergeSize;
  const K = cfg.inChans * cfg.temporalPatchSize * cfg.patchSize * cfg.patchSize;
  if (pixelValues.length !== N * K) {
    throw new VisionError("bad_pixels", `pixel_values must hold ${N} × ${K} values for these grids, got ${pixelValues.length}`);
  }
  const eps = cfg.rmsNormEps;
  let x = new Float64Array(N * D);
  const xn = new Float64Array(N * D);
  const tmp = new Float64Array(N * Math.max(3 * D, F));
  const tmp2 = new Float64Array(N * F);
  const acc = new Float64Array(N * D);
  let out: Float64Array | null = null;
  for (const op of plan.ops) {
    switch (op.op) {
      case "patch_embed": {
        linear(Float64Array.from(pixelValues), N, K, weight(weights, op.weight), D, null, x);
        break;
      }
      case "window_permute": {
        const y = new Float64Array(N * D);
        const g = unit * D;
        for (let k = 0; k < plan.windowIndex.length; k++) y.set(x.subarray(plan.windowIndex[k] * g, (plan.windowIndex[k] + 1) * g), k * g);
        x = y;
        break;
      }
      case "attention_block": {
        rmsNorm(x, N, D, weight(weights, op.norm), eps, xn);
        linear(xn, N, D, weight(weights, op.qkvWeight), 3 * D, weight(weights, op.qkvBias), tmp);
        segmentAttention(tmp, N, cfg, plan.angles, op.segments === "full" ? plan.fullSegments : plan.windowSegments, xn);
        linear(xn, N, D, weight(weights, op.projWeight), D, weight(weights, op.projBias), acc);
        for (let i = 0; i < N * D; i++) x[i] += acc[i];
        break;
      }
      case "mlp_block": {
        rmsNorm(x, N, D, weight(weights, op.norm), eps, xn);
        linear(xn, N, D, weight(weights, op.gateWeight), F, weight(weights, op.gateBias), tmp);
        linear(xn, N, D, weight(weights, op.upWeight), F, weight(weights, op.upBias), tmp2);
        for (let i = 0; i < N * F; i++) {
          const g = tmp[i];
          tmp[i] = (g / (1 + Math.exp(-g))) * tmp2[i];
        }
        linear(tmp, N, F, weight(weights, op.downWeight), D, weight(weights, op.downBias), acc);
        for (let i = 0; i < N * D; i++) x[i] += acc[i];
        break;
      }
      case "patch_merger": {
        const T = N / unit;
        const M = D * unit;
        const O = cfg.outHiddenSize;
        rmsNorm(x, N, D, weight(weights, op.norm), eps, xn);
        const h1 = new Float64Array(T * M);
        linear(xn, T, M, weight(weights, op.fc1Weight), M, weight(weights, op.fc1Bias), h1);
        for (let i = 0; i < T * M; i++) h1[i] = 0.5 * h1[i] * (1 + erf(h1[i] * Math.SQRT1_2));
        out = new Float64Array(T * O);
        linear(h1, T, M, weight(weights, op.fc2Weight), O, weight(weights, op.fc2Bias), out);
        break;
      }
      case "window_unpermute": {
        if (out === null) throw new VisionError("bad_grid", "window_unpermute before patch_merger");
        const O = cfg.outHiddenSize;
        const y: Float64Array = new Float64Array(out.length);
        for (let k = 0; k < plan.windowIndex.length; k++) y.set(out.subarray(k * O, (k + 1) * O), plan.windowIndex[k] * O);
        out = y;
        break;
      }
    }
  }
  if (out === null) throw new VisionError("bad_grid", "the plan has no patch_merger");
  return Float32Array.from(out);
}

/**
 * A dense projection with runtime/ops.ts `linear`'s contract; callers with a faster kernel (the converter's wasm SIMD
 * path) pass theirs to the tower.
 */
export type LinearOp = typeof linear;

/** Plans and runs the tower for `grids` in one call. */
export function qwen25VisionForward(
  cfg: Qwen25VisionConfig,
  weights: VisionWeights,
  pixelValues: Float32Array,
  grids: readonly VisionGrid[],
  prefix = "visual.",
  linearOp: LinearOp = linear,
): Float32Array {
  return runQwen25VisionPlan(planQwen25Vision(cfg, grids, prefix), weights, pixelValues, linearOp);
}
