// The model families (one module each) and the decoder naming detection over all of them.

import { CheckpointError } from "../errors.ts";
import { LLAVA_NEXT_NAMING } from "./llava_next.ts";
import type { TensorNaming } from "./llama.ts";
import { LANGUAGE_MODEL_PREFIX_NAMING, QWEN2_5_VL_NAMING } from "./qwen2_5_vl.ts";

export { decoderNaming, layerTensorNames, type NamingScheme, type TensorNaming } from "./llama.ts";
export { LLAVA_NEXT_NAMING } from "./llava_next.ts";
export { LANGUAGE_MODEL_PREFIX_NAMING, QWEN2_5_VL_NAMING } from "./qwen2_5_vl.ts";
export { keptPairsOfRanks, mlaLayerTensorNames } from "./mha2mla_released.ts";

export const ALL_NAMINGS: readonly TensorNaming[] = [QWEN2_5_VL_NAMING, LANGUAGE_MODEL_PREFIX_NAMING, LLAVA_NEXT_NAMING];

/** Picks the scheme whose layer-0 q_proj and embedding exist among `names`. */
export function detectTensorNaming(names: Iterable<string>): TensorNaming {
  const set = names instanceof Set ? (names as Set<string>) : new Set(names);
  for (const n of ALL_NAMINGS) {
    if (set.has(`${n.layer(0)}self_attn.q_proj.weight`) && set.has(n.embedTokens)) return n;
  }
  const sample = [...set].slice(0, 5).join(", ");
  throw new CheckpointError(
    "unknown_naming",
    `no known decoder naming matches this checkpoint (looked for model.layers.0, model.language_model.layers.0, ` +
      `language_model.model.layers.0 with their embed_tokens); first names: ${sample}`,
  );
}

/**
 * Tensors of the vision side, copied through conversion and packed as the vision part of a bundle: Qwen2.5-VL's tower
 * (`visual.*`, or `model.visual.*` in newer transformers), LLaVA-NeXT's tower, projector and image newline.
 */
export const VISION_PREFIXES: readonly string[] = [
  "visual.",
  "model.visual.",
  "vision_tower.",
  "model.vision_tower.",
  "multi_modal_projector.",
  "model.multi_modal_projector.",
  "image_newline",
  "model.image_newline",
];

export function isVisionTensor(name: string): boolean {
  return VISION_PREFIXES.some((p) => name.startsWith(p));
}
