// The Llama-style decoder layout every supported family's text model shares (Qwen2, Llama, the tiny fixture; Qwen2.5-VL
// and LLaVA-NeXT put it under their own prefixes): a naming scheme = where embed_tokens, the layers, the final norm and
// lm_head live; per layer the attention projections, the SwiGLU MLP and the two RMSNorms.

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

/** A decoder whose embed_tokens, layers and norm sit under `base` (e.g. `model.`), with lm_head at `lmHead`. */
export function decoderNaming(scheme: NamingScheme, base: string, lmHead: string): TensorNaming {
  return {
    scheme,
    embedTokens: `${base}embed_tokens.weight`,
    finalNorm: `${base}norm.weight`,
    lmHead,
    layer: (i: number) => `${base}layers.${i}.`,
  };
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
