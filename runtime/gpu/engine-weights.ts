// The converted (MLA) language model's weights on the GPU for the engine (engine.ts): every linear layer in one of the
// layouts of kernels/matmul-nbits.ts — f32, f16, or ONNX Runtime MatMulNBits int4/int8 blocks along K (the bundle's
// bytes) — norms and biases as f32. `uploadEngineWeights` quantizes a host model (MlaModelWeights, f32) at upload;
// the same structure can be filled from a bundle's GPU buffers.

import { f32ToF16Bits } from "../../format/codec/fp16.ts";
import { quantizeMatMulNBits, type QuantBlock } from "../../checkpoint/bundle/matmul-nbits.ts";
import type { GpuContext } from "../../kernels/gpu-context.ts";
import { uploadBuffer } from "../../kernels/dispatch.ts";
import { uploadWeights, uploadWeightsSplit, type GpuWeights, type LinearWeights, type SplitGpuWeights } from "../../kernels/matmul-nbits.ts";
import { MlaError } from "../../format/errors.ts";
import type { MlaModelWeights } from "../mla/weights.ts";

export class EngineWeightsError extends MlaError<"bad_format"> {
  override readonly name = "EngineWeightsError";
  constructor(code: "bad_format", message: string) {
    super(code, message);
  }
}

/** How the linear layers (projections, MLP, embedding, LM head) are stored on the GPU. */
export type EngineWeightFormat = "f32" | "f16" | { readonly bits: 4 | 8; readonly block: QuantBlock; readonly zeroPoints?: boolean };

export interface EngineSpaceWeights {
  /** c = W_dkv x: [D_c × hidden]. */
  readonly downKv: GpuWeights;
  /** [n_kv·d_c × D_c] and its bias [n_kv·d_c] (f32) or null. */
  readonly upK: GpuWeights;
  readonly upKBias: GPUBuffer | null;
  /** [n_kv·d_h × D_c] and its bias. */
  readonly upV: GpuWeights;
  readonly upVBias: GPUBuffer | null;
}

export interface EngineLayerWeights {
  readonly inputNorm: GPUBuffer;
  readonly postNorm: GPUBuffer;
  /** [n_h·d_h × hidden]: rope rows of every head, then NoPE rows (docs/method.md §4). */
  readonly qProj: GpuWeights;
  /** [n_kv·r × hidden]. */
  readonly kRProj: GpuWeights;
  /** [n_h·d_h + n_kv·r] f32: q bias then k_rope bias (zeros where absent), or null when neither has one. */
  readonly projBias: GPUBuffer | null;
  readonly spaces: readonly EngineSpaceWeights[];
  readonly oProj: GpuWeights;
  readonly gate: GpuWeights;
  readonly up: GpuWeights;
  readonly down: GpuWeights;
  /** Kept RoPE pairs per KV head (r/2 each). */
  readonly keptPairs: readonly (readonly number[])[];
}

export interface EngineWeights {
  /** Split in row ranges when the table would pass the binding limit (a 152K-vocab head tied to it). */
  readonly embed: SplitGpuWeights;
  readonly finalNorm: GPUBuffer;
  /** Split in row ranges when one tensor would pass the binding limit (a 152K-vocab int4 head). */
  readonly lmHead: SplitGpuWeights;
  readonly layers: readonly EngineLayerWeights[];
  /** GPU bytes of every weight buffer. */
  readonly bytes: number;
  destroy(): void;
}

/** A host f32 [n × k] matrix in `format`. */
export function linearWeights(data: Float32Array, n: number, k: number, format: EngineWeightFormat): LinearWeights {
  if (data.length !== n * k) throw new EngineWeightsError("bad_format", `weight has ${data.length} values, expected ${n}·${k}`);
  if (format === "f32") return { kind: "f32", n, k, data };
  if (format === "f16") {
    const h = new Uint16Array(data.length);
    for (let i = 0; i < data.length; i++) h[i] = f32ToF16Bits(data[i], "nearest-even");
    return { kind: "f16", n, k, data: h };
  }
  const q = quantizeMatMulNBits(data, { n, k, bits: format.bits, block: format.block }, { zeroPoints: format.zeroPoints === true });
  return { kind: "nbits", n, k, bits: q.bits, block: q.block, data: q.b, scales: q.scales, ...(q.zeroPoints ? { zeroPoints: q.zeroPoints } : {}) };
}

/** Uploads a host MLA model, quantizing its linear layers to `format` (norms and biases stay f32). */
export function uploadEngineWeights(ctx: GpuContext, model: MlaModelWeights, format: EngineWeightFormat = "f32"): EngineWeights {
  const c = model.config;
  const d = c.hiddenSize;
  const nh = c.numHeads;
  const nkv = c.numKvHeads;
  const dh = c.headDim;
  const r = model.ropeDims;
  const D = model.dKv * nkv;
  const I = c.intermediateSize;
  const owned: Array<{ destroy(): void }> = [];
  let bytes = 0;
  const lin = (data: Float32Array, n: number, k: number, label: string): GpuWeights => {
    const w = uploadWeights(ctx, linearWeights(data, n, k, format), label);
    owned.push(w);
    bytes += w.bytes;
    return w;
  };
  const vec = (data: ArrayLike<number>, label: string): GPUBuffer => {
    const b = uploadBuffer(ctx, label, Float32Array.from(data));
    owned.push(b);
    bytes += b.size;
    return b;
  };
  try {
    const embed = uploadWeightsSplit(ctx, linearWeights(model.shell.embedTokens, c.vocabSize, d, format), "embed_tokens");
    owned.push(embed);
    bytes += embed.bytes;
    // A tied head is the same bytes in a different binding layout (split in row ranges): uploaded once more.
    const lmHead = uploadWeightsSplit(ctx, linearWeights(model.shell.lmHead, c.vocabSize, d, format), "lm_head");
    owned.push(lmHead);
    bytes += lmHead.bytes;
    const layers = model.attention.map((a, l): EngineLayerWeights => {
      const s = model.shell.layers[l];
      let projBias: GPUBuffer | null = null;
      if (a.qBias !== null || a.kRBias !== null) {
        const b = new Float32Array(nh * dh + nkv * r);
        if (a.qBias) b.set(a.qBias, 0);
        if (a.kRBias) b.set(a.kRBias, nh * dh);
        projBias = vec(b, `L${l}.proj_bias`);
      }
      return {
        inputNorm: vec(s.inputNorm, `L${l}.input_norm`),
        postNorm: vec(s.postNorm, `L${l}.post_norm`),
        qProj: lin(a.qProj, nh * dh, d, `L${l}.q_proj`),
        kRProj: lin(a.kRProj, nkv * r, d, `L${l}.k_r_proj`),
        projBias,
        spaces: a.spaces.map((sp, m) => ({
          downKv: lin(sp.downKv, D, d, `L${l}.s${m}.down_kv`),
          // d_c = 0 (the whole head is rope): no W_uk; a zero row stands in (absorb-query reads none of it).
          upK: dh === r ? lin(new Float32Array(D), 1, D, `L${l}.s${m}.up_k`) : lin(sp.upK, nkv * (dh - r), D, `L${l}.s${m}.up_k`),
          upKBias: sp.upKBias ? vec(sp.upKBias, `L${l}.s${m}.up_k_bias`) : null,
          upV: lin(sp.upV, nkv * dh, D, `L${l}.s${m}.up_v`),
          upVBias: sp.upVBias ? vec(sp.upVBias, `L${l}.s${m}.up_v_bias`) : null,
        })),
        oProj: lin(a.oProj, d, nh * dh, `L${l}.o_proj`),
        gate: lin(s.gate, I, d, `L${l}.gate`),
        up: lin(s.up, I, d, `L${l}.up`),
        down: lin(s.down, d, I, `L${l}.down`),
        keptPairs: a.keptPairs.map((p) => Array.from(p)),
      };
    });
    return {
      embed,
      finalNorm: vec(model.shell.finalNorm, "final_norm"),
      lmHead,
      layers,
      bytes,
      destroy: () => owned.forEach((o) => o.destroy()),
    };
  } catch (e) {
    owned.forEach((o) => o.destroy());
    throw e;
  }
}
