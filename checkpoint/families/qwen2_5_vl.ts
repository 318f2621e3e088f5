// Everything the Qwen2.5-VL family decides: its config.json (text decoder + vision_config, as released for 3B and 7B),
// its tensor names (decoder and `visual.*`), which token ids route to the image latent and the M-RoPE layout.
// The runtime (runtime/vision/qwen2_5_vl-vision.ts, model/decoder-session.ts) reads only what this module returns.

import { parseModelConfig, type TextModelConfig } from "../config.ts";
import { CheckpointError } from "../errors.ts";
import { decoderNaming, type TensorNaming } from "./llama.ts";

export const QWEN2_5_VL_MODEL_TYPE = "qwen2_5_vl";

/** Qwen2.5-VL as saved by transformers 4.51 (`model.layers.{i}`), also plain Qwen2/Llama LMs and the tiny fixture. */
export const QWEN2_5_VL_NAMING = decoderNaming("qwen2_5_vl", "model.", "lm_head.weight");
/** Newer transformers VLM layout (`model.language_model.layers.{i}`), for Qwen2.5-VL and LLaVA-NeXT alike. */
export const LANGUAGE_MODEL_PREFIX_NAMING = decoderNaming("language_model_prefix", "model.language_model.", "lm_head.weight");

/** `vision_config` of a Qwen2.5-VL checkpoint (Qwen2_5_VisionTransformerPretrainedModel). */
export interface Qwen25VisionConfig {
  readonly depth: number;
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numHeads: number;
  readonly headDim: number;
  readonly inChans: number;
  /** Width of a merged token = the decoder's hidden_size. */
  readonly outHiddenSize: number;
  readonly patchSize: number;
  readonly temporalPatchSize: number;
  readonly spatialMergeSize: number;
  /** Side of an attention window in pixels (112 → 4 merged tokens per side). */
  readonly windowSize: number;
  /** Blocks that attend over the whole image; the others attend within windows. */
  readonly fullattBlockIndexes: readonly number[];
  readonly tokensPerSecond: number;
  /** RMSNorm eps of norm1/norm2/merger.ln_q (fixed 1e-6 in the HF code). */
  readonly rmsNormEps: number;
  /** Base of the vision 2-D rotary (fixed 10000 in the HF code). */
  readonly ropeTheta: number;
}

export interface Qwen25VLConfig {
  readonly text: TextModelConfig;
  readonly vision: Qwen25VisionConfig;
}

type Json = Record<string, unknown>;

function int(c: Json, key: string, label: string, fallback?: number, min = 1): number {
  const v = c[key] ?? fallback;
  if (!Number.isSafeInteger(v) || (v as number) < min) {
    throw new CheckpointError("bad_config", `${label}: vision_config.${key} must be an integer ≥ ${min}, got ${JSON.stringify(c[key])}`);
  }
  return v as number;
}

/** Parses `vision_config` with the HF defaults (those of the released 7B) for absent fields. */
export function parseQwen25VisionConfig(json: unknown, textHidden: number, label = "config.json"): Qwen25VisionConfig {
  if (json === null || typeof json !== "object" || Array.isArray(json)) {
    throw new CheckpointError("bad_config", `${label}: vision_config must be an object`);
  }
  const c = json as Json;
  if (c.patch_cells !== undefined) {
    throw new CheckpointError(
      "bad_config",
      `${label}: vision_config describes the tiny fixture's toy tower (patch_cells), not a Qwen2.5-VL vision transformer; this runtime needs the checkpoint's visual.* tensors`,
    );
  }
  const hiddenSize = int(c, "hidden_size", label, 1280);
  const numHeads = int(c, "num_heads", label, 16);
  if (hiddenSize % numHeads !== 0) throw new CheckpointError("bad_config", `${label}: vision hidden_size ${hiddenSize} is not a multiple of num_heads ${numHeads}`);
  const headDim = hiddenSize / numHeads;
  if (headDim % 4 !== 0) throw new CheckpointError("bad_config", `${label}: vision head_dim ${headDim} must be a multiple of 4 (2-D rotary)`);
  const depth = int(c, "depth", label, 32);
  const full = c.fullatt_block_indexes ?? [7, 15, 23, 31];
  if (!Array.isArray(full) || !full.every((i) => Number.isSafeInteger(i) && i >= 0 && i < depth)) {
    throw new CheckpointError("bad_config", `${label}: vision_config.fullatt_block_indexes must list block indexes < depth ${depth}`);
  }
  const act = c.hidden_act ?? "silu";
  if (act !== "silu") throw new CheckpointError("bad_config", `${label}: vision hidden_act ${JSON.stringify(act)} is not implemented (silu)`);
  const patchSize = int(c, "patch_size", label, int(c, "spatial_patch_size", label, 14));
  const spatialMergeSize = int(c, "spatial_merge_size", label, 2);
  const windowSize = int(c, "window_size", label, 112);
  if (windowSize % (patchSize * spatialMergeSize) !== 0) {
    throw new CheckpointError("bad_config", `${label}: window_size ${windowSize} is not a multiple of patch_size·spatial_merge_size`);
  }
  const outHiddenSize = int(c, "out_hidden_size", label, 3584);
  if (outHiddenSize !== textHidden) {
    throw new CheckpointError("bad_config", `${label}: vision out_hidden_size ${outHiddenSize} differs from the decoder's hidden_size ${textHidden}`);
  }
  return {
    depth,
    hiddenSize,
    intermediateSize: int(c, "intermediate_size", label, 3420),
    numHeads,
    headDim,
    inChans: int(c, "in_chans", label, int(c, "in_channels", label, 3)),
    outHiddenSize,
    patchSize,
    temporalPatchSize: int(c, "temporal_patch_size", label, 2),
    spatialMergeSize,
    windowSize,
    fullattBlockIndexes: [...(full as number[])],
    tokensPerSecond: int(c, "tokens_per_second", label, 2),
    rmsNormEps: 1e-6,
    ropeTheta: 10000,
  };
}

/** config.json of a Qwen2.5-VL checkpoint → decoder and vision geometry; refuses other families. */
export function parseQwen25VLConfig(json: unknown, label = "config.json"): Qwen25VLConfig {
  const text = parseModelConfig(json, label);
  if (text.modelType !== QWEN2_5_VL_MODEL_TYPE) {
    throw new CheckpointError("bad_config", `${label}: model_type ${JSON.stringify(text.modelType)} is not ${QWEN2_5_VL_MODEL_TYPE}`);
  }
  if (text.mropeSection === null) throw new CheckpointError("bad_config", `${label}: Qwen2.5-VL needs rope_scaling.mrope_section`);
  if (text.tokens.imagePad === null || text.tokens.visionStart === null || text.tokens.visionEnd === null) {
    throw new CheckpointError("bad_config", `${label}: image_token_id, vision_start_token_id and vision_end_token_id are required`);
  }
  const vision = parseQwen25VisionConfig((json as Json).vision_config ?? {}, text.hiddenSize, label);
  return { text, vision };
}

/** Number of decoder tokens one image of `grid` patches becomes (grid_t·grid_h·grid_w / merge²). */
export function imageTokenCount(grid: { readonly t: number; readonly h: number; readonly w: number }, spatialMergeSize: number): number {
  return (grid.t * grid.h * grid.w) / (spatialMergeSize * spatialMergeSize);
}

/** Decoder tensor names: transformers ≤ 4.51 (`model.layers.N`) or the newer `model.language_model.layers.N`. */
export function qwen25DecoderNaming(names: Iterable<string>): TensorNaming {
  const set = new Set(names);
  if (set.has("model.language_model.embed_tokens.weight")) return LANGUAGE_MODEL_PREFIX_NAMING;
  return QWEN2_5_VL_NAMING;
}

/** Prefix of the vision tower's tensors: `visual.` (released) or `model.visual.` (newer transformers). */
export function qwen25VisionPrefix(names: Iterable<string>): string {
  for (const n of names) if (n.startsWith("model.visual.")) return "model.visual.";
  return "visual.";
}

/** Tensor names of the vision tower under `prefix` (PyTorch layouts in the comments). */
export function qwen25VisionTensorNames(prefix: string, depth: number) {
  const block = (i: number) => {
    const p = `${prefix}blocks.${i}.`;
    return {
      norm1: `${p}norm1.weight`,
      norm2: `${p}norm2.weight`,
      /** [3·D × D], rows q | k | v */
      qkvWeight: `${p}attn.qkv.weight`,
      qkvBias: `${p}attn.qkv.bias`,
      projWeight: `${p}attn.proj.weight`,
      projBias: `${p}attn.proj.bias`,
      gateWeight: `${p}mlp.gate_proj.weight`,
      gateBias: `${p}mlp.gate_proj.bias`,
      upWeight: `${p}mlp.up_proj.weight`,
      upBias: `${p}mlp.up_proj.bias`,
      downWeight: `${p}mlp.down_proj.weight`,
      downBias: `${p}mlp.down_proj.bias`,
    };
  };
  return {
    /** Conv3d [D, 3, T, P, P], no bias */
    patchEmbed: `${prefix}patch_embed.proj.weight`,
    blocks: Array.from({ length: depth }, (_, i) => block(i)),
    mergerNorm: `${prefix}merger.ln_q.weight`,
    /** [D·m² × D·m²] */
    mergerFc1Weight: `${prefix}merger.mlp.0.weight`,
    mergerFc1Bias: `${prefix}merger.mlp.0.bias`,
    /** [out × D·m²] */
    mergerFc2Weight: `${prefix}merger.mlp.2.weight`,
    mergerFc2Bias: `${prefix}merger.mlp.2.bias`,
  };
}

export type Qwen25VisionTensorNames = ReturnType<typeof qwen25VisionTensorNames>;

/**
 * Token ids whose K/V go through the image latent (method.md §6.1): `<|image_pad|>`, `<|vision_start|>`,
 * `<|vision_end|>`. Video pads and everything generated are text.
 */
export function qwen25ImageRoutedTokenIds(config: TextModelConfig): readonly number[] {
  return config.imageRoutedTokenIds;
}

/**
 * M-RoPE layout: rotate_half pairs (i, i + head_dim/2), pair i driven by the temporal position for
 * i < s0, the height position for s0 ≤ i < s0 + s1, the width position after (mrope_section [s0, s1, s2]).
 */
export const QWEN2_5_VL_ROPE_LAYOUT = { pairing: "rotate_half", streams: ["t", "h", "w"] } as const;

const SPECIAL = {
  bos_token_id: 151643,
  eos_token_id: 151645,
  vision_start_token_id: 151652,
  vision_end_token_id: 151653,
  vision_token_id: 151654,
  image_token_id: 151655,
  video_token_id: 151656,
};

const VISION_RELEASED = {
  depth: 32,
  hidden_act: "silu",
  hidden_size: 1280,
  intermediate_size: 3420,
  num_heads: 16,
  in_chans: 3,
  patch_size: 14,
  spatial_merge_size: 2,
  spatial_patch_size: 14,
  window_size: 112,
  fullatt_block_indexes: [7, 15, 23, 31],
  tokens_per_second: 2,
  temporal_patch_size: 2,
};

/** config.json of Qwen/Qwen2.5-VL-3B-Instruct as released (geometry fields). */
export const QWEN2_5_VL_3B_CONFIG = {
  architectures: ["Qwen2_5_VLForConditionalGeneration"],
  model_type: "qwen2_5_vl",
  ...SPECIAL,
  hidden_act: "silu",
  hidden_size: 2048,
  intermediate_size: 11008,
  max_position_embeddings: 128000,
  num_attention_heads: 16,
  num_hidden_layers: 36,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-6,
  rope_theta: 1000000.0,
  tie_word_embeddings: true,
  torch_dtype: "bfloat16",
  vocab_size: 151936,
  rope_scaling: { type: "mrope", mrope_section: [16, 24, 24] },
  vision_config: { ...VISION_RELEASED, out_hidden_size: 2048 },
} as const;

/**
 * config.json of Qwen/Qwen2.5-VL-7B-Instruct as released (geometry fields). Note: the 7B's embedding has 152,064
 * rows (padded vocabulary) and an untied lm_head; the 3B has 151,936 and ties them.
 */
export const QWEN2_5_VL_7B_CONFIG = {
  architectures: ["Qwen2_5_VLForConditionalGeneration"],
  model_type: "qwen2_5_vl",
  ...SPECIAL,
  hidden_act: "silu",
  hidden_size: 3584,
  intermediate_size: 18944,
  max_position_embeddings: 128000,
  num_attention_heads: 28,
  num_hidden_layers: 28,
  num_key_value_heads: 4,
  rms_norm_eps: 1e-6,
  rope_theta: 1000000.0,
  tie_word_embeddings: false,
  torch_dtype: "bfloat16",
  vocab_size: 152064,
  rope_scaling: { type: "mrope", mrope_section: [16, 24, 24] },
  vision_config: { ...VISION_RELEASED, out_hidden_size: 3584 },
} as const;
