// Cache bytes per token over all layers: original bf16 GQA/MHA, MLA bf16, quantized MLA in mla-edge's chunks with every
// scale, zero and framing byte counted, the §9.4 table convention, and the papers' convention (docs/method.md §9.2, §9.4).
import { latentWidth, ropeWidth, type CacheSpec } from "../cache-spec.ts";
import type { Axis, Bits, GroupSize, RopePolicy } from "../codec/types.ts";
import { DEFAULT_CHUNK_TOKENS } from "../chunk/types.ts";
import { plannedChunkBytes } from "../chunk/plan.ts";

export interface QuantOptions {
  readonly bits: Bits;
  /** Latent group size, default 64 (HF QuantizedCache's q_group_size). */
  readonly group?: GroupSize;
  /** Latent grouping axis, default token. */
  readonly axis?: Axis;
  /** Rope policy, default fp16. */
  readonly rope?: RopePolicy;
  /** Tokens per sealed chunk C, default 64: amortises channel-axis scales and chunk framing. */
  readonly chunkTokens?: number;
}

/** Bytes per token over all layers of a quantized MLA cache as mla-edge stores it (sealed chunks). */
export interface QuantizedBytes {
  readonly latentCodes: number;
  /** fp16 scale + fp16 zero per group (asymmetric codec). */
  readonly latentScales: number;
  /** Rope keys under the rope policy, their per-head scale and zero included. */
  readonly rope: number;
  /** Chunk header, modality, positions, alignment padding and CRC, amortised over C tokens. */
  readonly framing: number;
  readonly total: number;
}

export interface CacheBytesPerToken {
  readonly options: Required<QuantOptions>;
  /** 2 (K and V) · L · n_kv · d_h · 2 bytes. */
  readonly originalBf16: number;
  /** L · (D_c + n_kv·r) · 2 bytes. */
  readonly mlaBf16: number;
  /** The unsealed tail: L · (D_c + n_kv·r) · 4 bytes (raw float32, before framing). */
  readonly mlaRawTail: number;
  readonly quantized: QuantizedBytes;
  /**
   * docs/method.md §9.4 table convention: symmetric codes with one fp16 scale per token-axis group (no zero point, no
   * framing); rope at 2 B per value for fp16, or codes plus one fp16 scale per head.
   */
  readonly symmetricTable: number;
  /** Fractions of originalBf16. `paper` = MLA fraction × bits/16, ignoring scales and the residual window (§9.2). */
  readonly fractions: {
    readonly mla: number;
    readonly quantized: number;
    readonly symmetricTable: number;
    readonly paper: number;
  };
}

function ropePolicyBits(rope: RopePolicy): number {
  return rope === "fp16" ? 16 : rope === "int8" ? 8 : 4;
}

/** The original model's bf16 K + V cache for `tokens` tokens over `layers` layers: 2 · n_kv · d_h · 2 bytes each. */
export function bf16GqaBytes(spec: Pick<CacheSpec, "kvHeads" | "headDim">, tokens: number, layers: number): number {
  return tokens * layers * 2 * spec.kvHeads * spec.headDim * 2;
}

/** Bytes per token over all layers of `spec`'s cache, original and MLA, bf16 and quantized. */
export function cacheBytesPerToken(spec: CacheSpec, options: QuantOptions): CacheBytesPerToken {
  const opts: Required<QuantOptions> = {
    bits: options.bits,
    group: options.group ?? 64,
    axis: options.axis ?? "token",
    rope: options.rope ?? "fp16",
    chunkTokens: options.chunkTokens ?? DEFAULT_CHUNK_TOKENS,
  };
  const L = spec.layers;
  const dc = latentWidth(spec);
  const rw = ropeWidth(spec);
  const originalBf16 = bf16GqaBytes(spec, 1, L);
  const mlaBf16 = L * (dc + rw) * 2;

  const latentCodes = (L * dc * opts.bits) / 8;
  // Token axis: D_c/g groups per row. Channel axis: per group of g rows, one scale+zero per column → 4·D_c/g per token.
  const gTok = Math.min(opts.group, dc);
  const gChan = Math.min(opts.group, opts.chunkTokens);
  const latentScales = opts.axis === "token" ? L * (dc / gTok) * 4 : (L * dc * 4) / gChan;
  const rb = ropePolicyBits(opts.rope);
  const ropeGroups = spec.ropeDims === 0 ? 0 : spec.kvHeads;
  const rope = rb === 16 ? L * rw * 2 : L * ((rw * rb) / 8 + ropeGroups * 4);
  const payload = latentCodes + latentScales + rope;
  const sealed = { sealed: true, bits: opts.bits, group: opts.group, axis: opts.axis, rope: opts.rope } as const;
  const total = plannedChunkBytes(spec, sealed, opts.chunkTokens) / opts.chunkTokens;

  const symRope = rb === 16 ? L * rw * 2 : L * ((rw * rb) / 8 + ropeGroups * 2);
  const symmetricTable = latentCodes + L * (dc / gTok) * 2 + symRope;
  const mla = mlaBf16 / originalBf16;
  return {
    options: opts,
    originalBf16,
    mlaBf16,
    mlaRawTail: 2 * mlaBf16,
    quantized: { latentCodes, latentScales, rope, framing: total - payload, total },
    symmetricTable,
    fractions: {
      mla,
      quantized: total / originalBf16,
      symmetricTable: symmetricTable / originalBf16,
      paper: (mla * opts.bits) / 16,
    },
  };
}

/**
 * A remaining fraction as the papers print it: remaining % rounded half-up to 2 decimals, and the change as
 * remaining − 100 from that rounded value (so 3.125 % → 3.13 % → −96.87 %, MHA2MLA Table 2). docs/method.md §12.2 rounds
 * the change directly instead and so differs by 0.01 on exact ties (−90.63 % there, −90.62 % here, exact −90.625 %).
 */
export function paperPercent(fraction: number): { readonly remaining: number; readonly change: number } {
  const remaining = Math.round(fraction * 10_000) / 100;
  return { remaining, change: Math.round((remaining - 100) * 100) / 100 };
}
