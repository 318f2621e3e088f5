// The latent cache of one converted model: what is stored per token and per layer (docs/method.md §8.2).
// Worker and client both derive sizes, chunk layouts and hashes from this one description.

import { MlaError } from "./errors.ts";
/** Errors raised for an invalid model description or cache spec. */
export class CacheSpecError extends MlaError<"invalid_config" | "invalid_spec"> {
  override readonly name = "CacheSpecError";
  constructor(code: "invalid_config" | "invalid_spec", message: string) {
    super(code, message);
  }
}

/** Token modality. Numbered explicitly: the value is written into chunks. */
export const Modality = { text: 0, image: 1 } as const;
export type Modality = (typeof Modality)[keyof typeof Modality];

/** Description of one model's MLA latent cache. All counts are per token unless noted. */
export interface CacheSpec {
  /** Decoder layers L. */
  readonly layers: number;
  /** Query heads n_h (needed by decode, not by the cache bytes). */
  readonly heads: number;
  /** KV heads n_kv. */
  readonly kvHeads: number;
  /** Original head dim d_h. */
  readonly headDim: number;
  /** RoPE dims kept per KV head r (= 2 × kept frequency pairs). */
  readonly ropeDims: number;
  /** Latent width per KV head d_kv; the cached latent is D_c = kvHeads·dKv wide. */
  readonly dKv: number;
  /** 1 for a single latent space, 2 for modality-decoupled image/text projections. */
  readonly latentSpaces: 1 | 2;
  /** M-RoPE frequency pairs per t/h/w stream (sums to headDim/2), or null for 1-D RoPE. */
  readonly mropeSection: readonly [number, number, number] | null;
}

/** Width D_c of the latent per token per layer. */
export function latentWidth(spec: CacheSpec): number {
  return spec.kvHeads * spec.dKv;
}

/** Width n_kv·r of the rotated rope key per token per layer. */
export function ropeWidth(spec: CacheSpec): number {
  return spec.kvHeads * spec.ropeDims;
}

/** Throws CacheSpecError unless every field is a consistent positive integer. */
export function validateCacheSpec(spec: CacheSpec): CacheSpec {
  const ints: Array<[string, number]> = [
    ["layers", spec.layers],
    ["heads", spec.heads],
    ["kvHeads", spec.kvHeads],
    ["headDim", spec.headDim],
    ["ropeDims", spec.ropeDims],
    ["dKv", spec.dKv],
  ];
  for (const [name, v] of ints) {
    if (!Number.isInteger(v) || v < 0 || v > 1 << 20) {
      throw new CacheSpecError("invalid_spec", `${name} must be an integer in [0, 2^20], got ${v}`);
    }
  }
  if (spec.layers < 1 || spec.heads < 1 || spec.kvHeads < 1 || spec.headDim < 2) {
    throw new CacheSpecError("invalid_spec", "layers, heads, kvHeads must be ≥ 1 and headDim ≥ 2");
  }
  if (spec.heads % spec.kvHeads !== 0) {
    throw new CacheSpecError("invalid_spec", `heads (${spec.heads}) must be a multiple of kvHeads (${spec.kvHeads})`);
  }
  if (spec.headDim % 2 !== 0 || spec.ropeDims % 2 !== 0 || spec.ropeDims > spec.headDim) {
    throw new CacheSpecError("invalid_spec", `ropeDims (${spec.ropeDims}) must be even and ≤ headDim (${spec.headDim})`);
  }
  if (spec.dKv < 1) throw new CacheSpecError("invalid_spec", "dKv must be ≥ 1");
  // The latent replaces [k_nope; v] of every KV head: wider than that stores more than the original.
  const fullRank = spec.kvHeads * (spec.headDim - spec.ropeDims + spec.headDim);
  if (latentWidth(spec) > fullRank) {
    throw new CacheSpecError(
      "invalid_spec",
      `dKv ${spec.dKv} gives a latent of ${latentWidth(spec)} values, above the full rank ${fullRank} of [W_k,nope; W_v]`,
    );
  }
  if (spec.latentSpaces !== 1 && spec.latentSpaces !== 2) {
    throw new CacheSpecError("invalid_spec", `latentSpaces must be 1 or 2, got ${String(spec.latentSpaces)}`);
  }
  if (spec.mropeSection !== null) {
    const s = spec.mropeSection;
    if (s.length !== 3 || s.some((v) => !Number.isInteger(v) || v < 0) || s[0] + s[1] + s[2] !== spec.headDim / 2) {
      throw new CacheSpecError("invalid_spec", `mropeSection [${s.join(", ")}] must be 3 integers summing to headDim/2`);
    }
  }
  return spec;
}

/** The subset of an HF config.json this module reads (Qwen2.5-VL text config or a Llama/LLaVA-NeXT text_config). */
export interface ModelConfigLike {
  readonly num_hidden_layers?: number;
  readonly num_attention_heads?: number;
  readonly num_key_value_heads?: number;
  readonly hidden_size?: number;
  readonly head_dim?: number;
  readonly rope_scaling?: { readonly mrope_section?: readonly number[] } | null;
  readonly text_config?: ModelConfigLike;
}

/** Options that a conversion fixes on top of the base model's geometry. */
export interface ConversionShape {
  readonly dKv: number;
  /** Default headDim/4, the MHA2MLA-VLM release setting. */
  readonly ropeDims?: number;
  /** Default 2 (MD-SVD, image and text projections). */
  readonly latentSpaces?: 1 | 2;
}

/** Derives the cache spec of a conversion from an HF config.json (reads `text_config` when present, as LLaVA-NeXT). */
export function cacheSpecFromConfig(config: ModelConfigLike, shape: ConversionShape): CacheSpec {
  const c = config.text_config ?? config;
  const layers = c.num_hidden_layers;
  const heads = c.num_attention_heads;
  if (layers === undefined || heads === undefined) {
    throw new CacheSpecError("invalid_config", "config needs num_hidden_layers and num_attention_heads");
  }
  const kvHeads = c.num_key_value_heads ?? heads;
  const headDim = c.head_dim ?? (c.hidden_size !== undefined ? c.hidden_size / heads : NaN);
  if (!Number.isInteger(headDim)) {
    throw new CacheSpecError("invalid_config", "config needs head_dim or a hidden_size divisible by num_attention_heads");
  }
  const section = c.rope_scaling?.mrope_section ?? config.rope_scaling?.mrope_section;
  if (section !== undefined && section.length !== 3) {
    throw new CacheSpecError("invalid_config", `rope_scaling.mrope_section must have 3 entries, got ${section.length}`);
  }
  return validateCacheSpec({
    layers,
    heads,
    kvHeads,
    headDim,
    ropeDims: shape.ropeDims ?? headDim / 4,
    dKv: shape.dKv,
    latentSpaces: shape.latentSpaces ?? 2,
    mropeSection: section === undefined ? null : [section[0], section[1], section[2]],
  });
}

/** Qwen2.5-VL-7B-Instruct: 28 layers, 28/4 heads of dim 128, M-RoPE [16, 24, 24]; released d_kv ∈ {32, 64, 128}. */
export function qwen25vl7bSpec(dKv: 32 | 64 | 128 | number = 64, ropeDims = 32): CacheSpec {
  return validateCacheSpec({
    layers: 28,
    heads: 28,
    kvHeads: 4,
    headDim: 128,
    ropeDims,
    dKv,
    latentSpaces: 2,
    mropeSection: [16, 24, 24],
  });
}

/** LLaVA-NeXT-8B (Llama-3-8B LM): 32 layers, 32/8 heads of dim 128, 1-D RoPE. */
export function llavaNext8bSpec(dKv: 32 | 64 | 128 | number = 64, ropeDims = 32): CacheSpec {
  return validateCacheSpec({
    layers: 32,
    heads: 32,
    kvHeads: 8,
    headDim: 128,
    ropeDims,
    dKv,
    latentSpaces: 2,
    mropeSection: null,
  });
}

/**
 * Llama-2-7B as converted by MHA2MLA (LLM paper): 32 layers, 32 MHA heads of dim 128, 1-D RoPE, one latent space,
 * r = 16 rope dims (8 kept frequency pairs) — the setting behind its −68.75 % / −92.19 % / −96.87 % figures.
 */
export function llama2_7bSpec(dKv: 16 | 32 | 64 | number = 64, ropeDims = 16): CacheSpec {
  return validateCacheSpec({
    layers: 32,
    heads: 32,
    kvHeads: 32,
    headDim: 128,
    ropeDims,
    dKv,
    latentSpaces: 1,
    mropeSection: null,
  });
}

/** Canonical JSON of a spec (fixed key order) — the input of its hash. */
export function canonicalSpecJson(spec: CacheSpec): string {
  return JSON.stringify({
    layers: spec.layers,
    heads: spec.heads,
    kvHeads: spec.kvHeads,
    headDim: spec.headDim,
    ropeDims: spec.ropeDims,
    dKv: spec.dKv,
    latentSpaces: spec.latentSpaces,
    mropeSection: spec.mropeSection,
  });
}
