// Geometry of one MLA attention layer and the stored encoding of its cache (docs/codec.md, either latent axis),
// plus every size the kernels and cache stores derive from them. Validated once, shared by GPU, CPU and references.
import type { Bits } from "../format/codec/types.ts";
import { GeometryError } from "./errors.ts";

/** Attention geometry (docs/method.md §8.3). */
export interface MlaGeometry {
  /** Query heads n_h. */
  readonly heads: number;
  /** KV heads n_kv (rope keys are per KV head; the latent is shared by all heads). */
  readonly kvHeads: number;
  /** Rope dims per KV head r. */
  readonly ropeDims: number;
  /** Latent width D_c = n_kv·d_kv. */
  readonly latentWidth: number;
  /** Original head dim d_h; scores are divided by √d_h. */
  readonly headDim: number;
  /** 1 (single latent space) or 2 (space index = Modality value: 0 text, 1 image). */
  readonly spaces: 1 | 2;
}

export type LatentBits = Bits;
export type RopeEncoding = "fp16" | "int8" | "int4";
export type LatentAxis = "token" | "channel";

/** How sealed tokens are stored. */
export interface CacheEncoding {
  readonly latentBits: LatentBits;
  /**
   * Token axis: g consecutive channels of one token; the codec's group (32, 64, 128), effective g = min(group, D_c).
   * Channel axis: g consecutive tokens of one channel; pass the blocks' effective group min(group, chunk rows), a power
   * of two ≤ 128 (e.g. 16 for 16-token chunks with group 32).
   */
  readonly latentGroup: number;
  /** Latent grouping axis (docs/codec.md); token by default. Rope keys are always token-axis per KV head. */
  readonly latentAxis?: LatentAxis;
  readonly rope: RopeEncoding;
}

/** Tokens per flash-decoding page; also the sealed chunk size C of docs/codec.md by default. */
export const PAGE_TOKENS = 64;

/** Everything derived from geometry + encoding. All "words" are u32. */
export interface CacheLayout {
  readonly geometry: MlaGeometry;
  readonly encoding: CacheEncoding;
  readonly latentAxis: LatentAxis;
  /** Effective latent group: min(group, D_c) channels (token axis) or the given number of tokens (channel axis). */
  readonly latentGroup: number;
  /**
   * Latent scale words per token, D_c/g (one u32 = fp16 scale | fp16 zero << 16 each). Channel axis: the codec's
   * [rows/g][D_c] words of a group of g tokens, so a block starting at token t (g | t) still begins at word t·D_c/g.
   */
  readonly latentGroupsPerToken: number;
  readonly latentWordsPerToken: number;
  /** n_kv·r. */
  readonly ropeWidth: number;
  /** 16 for fp16, else 8 or 4. */
  readonly ropeBits: 16 | 8 | 4;
  readonly ropeWordsPerToken: number;
  /** Rope scale/zero words per token: n_kv for int rope, 0 for fp16. */
  readonly ropeScaleWordsPerToken: number;
  /** Stored words per token per layer, modality excluded. */
  readonly wordsPerToken: number;
  /** f32 values per tail token: latent then rope. */
  readonly tailStride: number;
}

function isPosInt(v: number): boolean {
  return Number.isInteger(v) && v > 0;
}

/** Validates the pair and derives the layout; throws GeometryError saying what to change. */
export function cacheLayout(geometry: MlaGeometry, encoding: CacheEncoding): CacheLayout {
  const { heads, kvHeads, ropeDims, latentWidth, headDim, spaces } = geometry;
  for (const [name, v] of [
    ["heads", heads],
    ["kvHeads", kvHeads],
    ["latentWidth", latentWidth],
    ["headDim", headDim],
  ] as const) {
    if (!isPosInt(v)) throw new GeometryError(`${name} must be a positive integer, got ${v}`);
  }
  if (!Number.isInteger(ropeDims) || ropeDims < 0) throw new GeometryError(`ropeDims must be an integer ≥ 0, got ${ropeDims}`);
  if (heads % kvHeads !== 0) throw new GeometryError(`heads (${heads}) must be a multiple of kvHeads (${kvHeads})`);
  if (spaces !== 1 && spaces !== 2) throw new GeometryError(`spaces must be 1 or 2, got ${String(spaces)}`);
  // 32 | D_c keeps every token row a whole number of u32 words at 8/4/2 bits, so tokens can be written in place.
  if (latentWidth % 32 !== 0) throw new GeometryError(`latentWidth (${latentWidth}) must be a multiple of 32`);
  const { latentBits, latentGroup, rope } = encoding;
  if (latentBits !== 8 && latentBits !== 4 && latentBits !== 2) {
    throw new GeometryError(`latentBits must be 8, 4 or 2, got ${String(latentBits)}`);
  }
  const latentAxis = encoding.latentAxis ?? "token";
  if (latentAxis !== "token" && latentAxis !== "channel") {
    throw new GeometryError(`latentAxis must be token or channel, got ${String(latentAxis)}`);
  }
  if (latentAxis === "token" && latentGroup !== 32 && latentGroup !== 64 && latentGroup !== 128) {
    throw new GeometryError(`latentGroup must be 32, 64 or 128, got ${latentGroup}`);
  }
  if (latentAxis === "channel" && !(Number.isInteger(latentGroup) && latentGroup >= 1 && latentGroup <= 128 && (latentGroup & (latentGroup - 1)) === 0)) {
    throw new GeometryError(`a channel-axis latentGroup must be a power of two ≤ 128 (the blocks' effective group), got ${latentGroup}`);
  }
  const g = latentAxis === "token" ? Math.min(latentGroup, latentWidth) : latentGroup;
  // Channel axis: D_c/g scale words per token must be whole so each token range maps to whole words.
  if (latentWidth % g !== 0) throw new GeometryError(`latentWidth (${latentWidth}) must be a multiple of the group ${g}`);
  const ropeWidth = kvHeads * ropeDims;
  const ropeBits = rope === "fp16" ? 16 : rope === "int8" ? 8 : rope === "int4" ? 4 : 0;
  if (ropeBits === 0) throw new GeometryError(`rope must be fp16, int8 or int4, got ${String(rope)}`);
  if ((ropeWidth * ropeBits) % 32 !== 0) {
    throw new GeometryError(`n_kv·r = ${ropeWidth} at ${ropeBits} bits is not a whole number of u32 words per token`);
  }
  const latentWordsPerToken = (latentWidth * latentBits) / 32;
  const latentGroupsPerToken = latentWidth / g;
  const ropeWordsPerToken = (ropeWidth * ropeBits) / 32;
  const ropeScaleWordsPerToken = ropeBits === 16 || ropeDims === 0 ? 0 : kvHeads;
  return {
    geometry,
    encoding,
    latentAxis,
    latentGroup: g,
    latentGroupsPerToken,
    latentWordsPerToken,
    ropeWidth,
    ropeBits: ropeBits as 16 | 8 | 4,
    ropeWordsPerToken,
    ropeScaleWordsPerToken,
    wordsPerToken: latentWordsPerToken + latentGroupsPerToken + ropeWordsPerToken + ropeScaleWordsPerToken,
    tailStride: latentWidth + ropeWidth,
  };
}

/** Word offsets of the regions of one layer's cache buffer at a given token capacity. */
export interface CacheRegions {
  readonly latentCodes: number;
  readonly latentScales: number;
  readonly ropeCodes: number;
  readonly ropeScales: number;
  /** Total words. */
  readonly words: number;
}

/** Regions are laid out back to back: [latent codes | latent scale·zero | rope codes | rope scale·zero]. */
export function cacheRegions(layout: CacheLayout, capacity: number): CacheRegions {
  const latentCodes = 0;
  const latentScales = latentCodes + capacity * layout.latentWordsPerToken;
  const ropeCodes = latentScales + capacity * layout.latentGroupsPerToken;
  const ropeScales = ropeCodes + capacity * layout.ropeWordsPerToken;
  const words = ropeScales + capacity * layout.ropeScaleWordsPerToken;
  return { latentCodes, latentScales, ropeCodes, ropeScales, words };
}

/** Bytes a decode step reads per cached sealed token (latent + scales + rope + rope scales + modality bit). */
export function bytesPerSealedToken(layout: CacheLayout): number {
  return layout.wordsPerToken * 4 + (layout.geometry.spaces === 2 ? 1 / 8 : 0);
}

/** f32 values of one query step: q_rope [n_h][r], q̃ [spaces][n_h][D_c], β [spaces][n_h]. */
export function queryStride(g: MlaGeometry): number {
  return g.heads * g.ropeDims + g.spaces * g.heads * g.latentWidth + g.spaces * g.heads;
}
