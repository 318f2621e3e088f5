// HF config.json → the decoder geometry the runtime needs (Qwen2.5-VL text decoder, or a Llama / LLaVA-NeXT text_config).

import { CheckpointError } from "./errors.ts";

/** Special token ids a VLM config names; null where the model has none. */
export interface SpecialTokenIds {
  readonly bos: number | null;
  readonly eos: number | null;
  /** Qwen `<|image_pad|>` / LLaVA `image_token_index`: one per image embedding. */
  readonly imagePad: number | null;
  readonly visionStart: number | null;
  readonly visionEnd: number | null;
  readonly videoPad: number | null;
}

export interface TextModelConfig {
  readonly modelType: string;
  readonly hiddenSize: number;
  readonly numLayers: number;
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly intermediateSize: number;
  readonly rmsNormEps: number;
  readonly ropeTheta: number;
  /** Frequency pairs per t/h/w stream (sums to headDim/2), or null for 1-D RoPE. */
  readonly mropeSection: readonly [number, number, number] | null;
  /** A rope_scaling type other than mrope/default (e.g. "llama3"), which the runtime does not implement. */
  readonly unsupportedRopeScaling: string | null;
  readonly vocabSize: number;
  readonly tieWordEmbeddings: boolean;
  /** q/k/v projections carry biases (Qwen2 family; Llama only with `attention_bias`). */
  readonly attentionBias: boolean;
  readonly tokens: SpecialTokenIds;
  /**
   * Token ids whose K/V go through the image latent space (docs/method.md §6.1): Qwen image_pad, vision_start and
   * vision_end; LLaVA image_token_index. Everything else, video and generated tokens included, is text.
   */
  readonly imageRoutedTokenIds: readonly number[];
}

type Json = Record<string, unknown>;

function obj(v: unknown): Json | undefined {
  return v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Json) : undefined;
}

function posInt(c: Json, key: string, label: string, fallback?: number): number {
  const v = c[key] ?? fallback;
  if (!Number.isSafeInteger(v) || (v as number) < 1) {
    throw new CheckpointError("bad_config", `${label}: ${key} must be a positive integer, got ${JSON.stringify(c[key])}`);
  }
  return v as number;
}

function optId(...values: unknown[]): number | null {
  for (const v of values) if (Number.isSafeInteger(v) && (v as number) >= 0) return v as number;
  return null;
}

/** Reads the text-decoder config. Geometry comes from `text_config` when present, special tokens from either level. */
export function parseModelConfig(json: unknown, label = "config.json"): TextModelConfig {
  const top = obj(json);
  if (top === undefined) throw new CheckpointError("bad_config", `${label}: must be a JSON object`);
  const text = obj(top.text_config);
  const c: Json = text !== undefined ? { ...top, ...text } : top;
  const modelType = typeof top.model_type === "string" ? top.model_type : String(c.model_type ?? "unknown");
  const hiddenSize = posInt(c, "hidden_size", label);
  const numHeads = posInt(c, "num_attention_heads", label);
  const numKvHeads = posInt(c, "num_key_value_heads", label, numHeads);
  const headDim = posInt(c, "head_dim", label, hiddenSize / numHeads);
  if (numHeads % numKvHeads !== 0) {
    throw new CheckpointError("bad_config", `${label}: num_attention_heads ${numHeads} is not a multiple of num_key_value_heads ${numKvHeads}`);
  }
  if (headDim % 2 !== 0) throw new CheckpointError("bad_config", `${label}: head_dim ${headDim} must be even for RoPE`);
  const scaling = obj(c.rope_scaling) ?? obj(top.rope_scaling);
  let mropeSection: [number, number, number] | null = null;
  let unsupportedRopeScaling: string | null = null;
  if (scaling !== undefined) {
    const type = String(scaling.rope_type ?? scaling.type ?? "default");
    const sec = scaling.mrope_section;
    if (Array.isArray(sec)) {
      if (sec.length !== 3 || !sec.every((v) => Number.isSafeInteger(v) && v >= 0) || sec[0] + sec[1] + sec[2] !== headDim / 2) {
        throw new CheckpointError("bad_config", `${label}: mrope_section ${JSON.stringify(sec)} must be 3 integers summing to head_dim/2`);
      }
      mropeSection = [sec[0], sec[1], sec[2]];
    } else if (type !== "default") {
      unsupportedRopeScaling = type;
    }
  }
  const isQwen = modelType.startsWith("qwen2");
  const imagePad = optId(top.image_token_id, top.image_token_index, c.image_token_id);
  const visionStart = optId(top.vision_start_token_id, c.vision_start_token_id);
  const visionEnd = optId(top.vision_end_token_id, c.vision_end_token_id);
  const routed = isQwen ? [imagePad, visionStart, visionEnd] : [imagePad];
  const eps = c.rms_norm_eps ?? 1e-6;
  const theta = c.rope_theta ?? 10000;
  if (typeof eps !== "number" || !(eps > 0)) throw new CheckpointError("bad_config", `${label}: rms_norm_eps must be a positive number`);
  if (typeof theta !== "number" || !(theta > 0)) throw new CheckpointError("bad_config", `${label}: rope_theta must be a positive number`);
  return {
    modelType,
    hiddenSize,
    numLayers: posInt(c, "num_hidden_layers", label),
    numHeads,
    numKvHeads,
    headDim,
    intermediateSize: posInt(c, "intermediate_size", label),
    rmsNormEps: eps,
    ropeTheta: theta,
    mropeSection,
    unsupportedRopeScaling,
    vocabSize: posInt(c, "vocab_size", label),
    tieWordEmbeddings: c.tie_word_embeddings === true,
    attentionBias: isQwen || c.attention_bias === true,
    tokens: {
      bos: optId(top.bos_token_id, c.bos_token_id),
      eos: optId(top.eos_token_id, c.eos_token_id),
      imagePad,
      visionStart,
      visionEnd,
      videoPad: optId(top.video_token_id, c.video_token_id),
    },
    imageRoutedTokenIds: routed.filter((v): v is number => v !== null),
  };
}
