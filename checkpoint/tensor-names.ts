// Where a decoder's tensors live in the HF checkpoint of each supported model family and transformers version.

import { CheckpointError } from "./errors.ts";

export type NamingScheme = "qwen2_5_vl" | "language_model_prefix" | "llava_next" | "llama";

/** Names of the text decoder's tensors under one naming scheme. */
export interface TensorNaming {
  readonly scheme: NamingScheme;
  readonly embedTokens: string;
  readonly finalNorm: string;
  readonly lmHead: string;
  /** Prefix of layer i, ending in a dot, e.g. `model.layers.3.`. */
  layer(i: number): string;
}

function naming(scheme: NamingScheme, base: string, lmHead: string): TensorNaming {
  return {
    scheme,
    embedTokens: `${base}embed_tokens.weight`,
    finalNorm: `${base}norm.weight`,
    lmHead,
    layer: (i: number) => `${base}layers.${i}.`,
  };
}

/** Qwen2.5-VL as saved by transformers 4.51 (`model.layers.{i}`), also plain Qwen2/Llama LMs. */
export const QWEN2_5_VL_NAMING = naming("qwen2_5_vl", "model.", "lm_head.weight");
/** Newer transformers VLM layout (`model.language_model.layers.{i}`), for Qwen2.5-VL and LLaVA-NeXT alike. */
export const LANGUAGE_MODEL_PREFIX_NAMING = naming("language_model_prefix", "model.language_model.", "lm_head.weight");
/** LLaVA-NeXT as saved by transformers 4.51 (`language_model.model.layers.{i}`). */
export const LLAVA_NEXT_NAMING = naming("llava_next", "language_model.model.", "language_model.lm_head.weight");

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

/** Per-layer tensor names of the original (GQA) attention, MLP and norms. */
export function layerTensorNames(n: TensorNaming, i: number) {
  const p = n.layer(i);
  return {
    qWeight: `${p}self_attn.q_proj.weight`,
    qBias: `${p}self_attn.q_proj.bias`,
    kWeight: `${p}self_attn.k_proj.weight`,
    kBias: `${p}self_attn.k_proj.bias`,
    vWeight: `${p}self_attn.v_proj.weight`,
    vBias: `${p}self_attn.v_proj.bias`,
    oWeight: `${p}self_attn.o_proj.weight`,
    gate: `${p}mlp.gate_proj.weight`,
    up: `${p}mlp.up_proj.weight`,
    down: `${p}mlp.down_proj.weight`,
    inputNorm: `${p}input_layernorm.weight`,
    postNorm: `${p}post_attention_layernorm.weight`,
  } as const;
}

/** Per-layer tensor names of the MLA layout (docs/method.md §10.4), plus our in-checkpoint kept rope pairs. */
export function mlaLayerTensorNames(n: TensorNaming, i: number) {
  const a = `${n.layer(i)}self_attn.`;
  const space = (s: string) => ({
    down: `${a}${s}.down_kv.weight`,
    upK: `${a}${s}.up_k.weight`,
    upKBias: `${a}${s}.up_k.bias`,
    upV: `${a}${s}.up_v.weight`,
    upVBias: `${a}${s}.up_v.bias`,
  });
  return {
    qWeight: `${a}q_proj.weight`,
    qBias: `${a}q_proj.bias`,
    kRWeight: `${a}k_r_proj.weight`,
    kRBias: `${a}k_r_proj.bias`,
    oWeight: `${a}o_proj.weight`,
    /** int32 [n_kv, r/2]: kept frequency pairs per KV head, ascending. Ours; absent from released checkpoints. */
    ropePairs: `${a}rope_pairs`,
    text: space("kv_proj_text"),
    image: space("kv_proj_img"),
    /** Single latent space (no modality split). */
    shared: space("kv_proj"),
  } as const;
}
