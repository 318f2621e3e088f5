// LLaVA-NeXT: where its text decoder's tensors live (transformers ≤ 4.51 `language_model.model.layers.{i}`; newer
// versions use the `model.language_model.` prefix shared with Qwen2.5-VL, see qwen2_5_vl.ts).

import { decoderNaming } from "./llama.ts";

/** LLaVA-NeXT as saved by transformers 4.51 (`language_model.model.layers.{i}`). */
export const LLAVA_NEXT_NAMING = decoderNaming("llava_next", "language_model.model.", "language_model.lm_head.weight");
