// Weights of the MLA-converted decoder (docs/method.md §4, §6.4, §10.4): permuted q_proj, k_r_proj, and one or two latent
// spaces (text, image), each with down_kv, up_k (+bias) and up_v (+bias). MLP, norms and embeddings are unchanged.

import type { TextModelConfig } from "../../checkpoint/config.ts";
import { cacheSpecFromConfig, Modality, type CacheSpec } from "../../format/cache-spec.ts";
import type { DecoderShellWeights } from "../weights.ts";

/** One latent space m: c = W_dkv x; k_nope = W_uk c + b_uk; v = W_uv c + b_uv. */
export interface LatentProjection {
  /** [D_c × hidden], no bias. */
  readonly downKv: Float32Array;
  /** [n_kv·d_c × D_c]; rows of KV head g are g·d_c … (g+1)·d_c − 1. */
  readonly upK: Float32Array;
  readonly upKBias: Float32Array | null;
  /** [n_kv·d_h × D_c] */
  readonly upV: Float32Array;
  readonly upVBias: Float32Array | null;
}

export interface MlaAttentionWeights {
  /** Kept pairs per KV head, ascending, r/2 each. */
  readonly keptPairs: readonly Int32Array[];
  /** [n_h·d_h × hidden], rows permuted: n_h·r rope rows (head-major) then n_h·d_c NoPE rows. */
  readonly qProj: Float32Array;
  readonly qBias: Float32Array | null;
  /** [n_kv·r × hidden]: the kept rows of the original k_proj, head-major. */
  readonly kRProj: Float32Array;
  readonly kRBias: Float32Array | null;
  /** One space (shared), or two indexed by Modality (0 = text, 1 = image). */
  readonly spaces: readonly LatentProjection[];
  /** [hidden × n_h·d_h], unchanged. */
  readonly oProj: Float32Array;
}

/** How the model was converted; written into the checkpoint's `mha2mla` config dict. */
export interface MlaConversionInfo {
  /** "high" | "low" | "uniform" | "2-norm" | "mkl" | "full" | … */
  readonly partialRopeVersion: string;
  /** "none" | "joint" | "split" | "md-svd" | "full-rank" | … */
  readonly svdInitMethod: string;
}

export interface MlaModelWeights {
  readonly config: TextModelConfig;
  readonly shell: DecoderShellWeights;
  readonly attention: readonly MlaAttentionWeights[];
  /** r: rope dims kept per KV head (2 × kept pairs). */
  readonly ropeDims: number;
  /** d_kv: latent width per KV head; D_c = n_kv·d_kv. */
  readonly dKv: number;
  readonly latentSpaces: 1 | 2;
  readonly conversion: MlaConversionInfo;
}

/** Latent space a token of modality `m` uses. */
export function spaceOf(latentSpaces: 1 | 2, m: number): number {
  return latentSpaces === 1 ? 0 : m === Modality.image ? 1 : 0;
}

/** The cache spec (format/cache-spec.ts) of a converted model. */
/** The cache geometry of an MLA model (host weights, or only their shape: a model that lives on the GPU). */
export type MlaModelShape = Pick<MlaModelWeights, "config" | "dKv" | "ropeDims" | "latentSpaces">;

export function mlaCacheSpec(model: MlaModelShape): CacheSpec {
  const c = model.config;
  return cacheSpecFromConfig(
    {
      num_hidden_layers: c.numLayers,
      num_attention_heads: c.numHeads,
      num_key_value_heads: c.numKvHeads,
      hidden_size: c.hiddenSize,
      head_dim: c.headDim,
      rope_scaling: c.mropeSection === null ? null : { mrope_section: c.mropeSection },
    },
    { dKv: model.dKv, ropeDims: model.ropeDims, latentSpaces: model.latentSpaces },
  );
}
