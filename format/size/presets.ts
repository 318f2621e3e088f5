// Named models for size accounting and the CLI: each maps (d_kv, rope dims) to a cache spec (format/cache-spec.ts).
import { llama2_7bSpec, llavaNext8bSpec, qwen25vl7bSpec, type CacheSpec } from "../cache-spec.ts";

export interface ModelPreset {
  readonly description: string;
  /** Rope dims per KV head when none is given: the setting the papers used for this model. */
  readonly defaultRopeDims: number;
  readonly spec: (dKv: number, ropeDims: number) => CacheSpec;
}

export const MODEL_PRESETS: Readonly<Record<string, ModelPreset>> = {
  "qwen2.5-vl-7b": {
    description: "Qwen2.5-VL-7B-Instruct (28 layers, 4 KV heads × 128, M-RoPE; MHA2MLA-VLM release)",
    defaultRopeDims: 32,
    spec: qwen25vl7bSpec,
  },
  "llava-next-8b": {
    description: "LLaVA-NeXT-8B / Llama-3-8B LM (32 layers, 8 KV heads × 128; MHA2MLA-VLM release)",
    defaultRopeDims: 32,
    spec: llavaNext8bSpec,
  },
  "llama-2-7b": {
    description: "Llama-2-7B (32 layers, 32 MHA heads × 128; MHA2MLA LLM paper, r = 16 dims)",
    defaultRopeDims: 16,
    spec: llama2_7bSpec,
  },
};

/** The preset called `name`, or undefined. */
export function findModelPreset(name: string): ModelPreset | undefined {
  return Object.hasOwn(MODEL_PRESETS, name) ? MODEL_PRESETS[name] : undefined;
}
