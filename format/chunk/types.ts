// Types of the chunk wire format (docs/chunk-format.md): one chunk = up to C tokens × a range of layers of a session's
// latent cache, self-describing and checksummed, so the worker can validate it without a model and readers can trust it.
import { MlaError } from "../errors.ts";
import type { Axis, Bits, GroupSize, QuantizedBlock, RopePolicy } from "../codec/types.ts";

/** Tokens per sealed chunk unless a session says otherwise (FlashMLA's page size is 64 too). */
export const DEFAULT_CHUNK_TOKENS = 64;

/** Production Durable Object rows are capped at 2 MB; stay clear of it whatever the model (issue: ≤ 1.8 MB). */
export const MAX_CHUNK_BYTES = 1_800_000;

/**
 * How a chunk's values are stored. A sealed chunk is quantized with the session's codec; the unsealed tail of a session
 * (fewer than C tokens) is stored raw float32 until its chunk fills (the residual window, docs/codec.md).
 */
export interface ChunkCodec {
  readonly sealed: boolean;
  readonly bits: Bits;
  readonly group: GroupSize;
  readonly axis: Axis;
  readonly rope: RopePolicy;
}

/** Everything a chunk says about itself before its payload. */
export interface ChunkHeader {
  readonly version: number;
  /** SHA-256 of the cache spec's canonical JSON (32 bytes). */
  readonly specHash: Uint8Array;
  readonly codec: ChunkCodec;
  /** Session token index of the first token. */
  readonly tokenStart: number;
  readonly tokenCount: number;
  readonly layerStart: number;
  readonly layerCount: number;
  /** Modality per token (format/cache-spec.ts Modality: 0 text, 1 image). */
  readonly modality: Uint8Array;
  /** M-RoPE positions, [t, h, w] per token, length 3·tokenCount. */
  readonly positions: Int32Array;
}

/** One layer's data inside a chunk: quantized blocks when sealed, float32 [tokens × width] when raw. */
export type ChunkLayer =
  | { readonly kind: "quantized"; readonly latent: QuantizedBlock; readonly rope: QuantizedBlock }
  | { readonly kind: "raw"; readonly latent: Float32Array; readonly rope: Float32Array };

/** Model geometry a chunk records so its layout can be checked without the spec (must agree with the spec hash). */
export interface ChunkGeometry {
  /** Layers of the whole model (spec.layers); the chunk's layer range lies inside it. */
  readonly modelLayers: number;
  readonly kvHeads: number;
  readonly dKv: number;
  readonly ropeDims: number;
}

/** What readChunkHeader returns: the header plus the recorded geometry and the chunk's exact size. */
export interface ParsedChunkHeader extends ChunkHeader {
  readonly geometry: ChunkGeometry;
  /** Total bytes of the chunk, checksum included. */
  readonly byteLength: number;
}

export interface DecodedChunk {
  readonly header: ChunkHeader;
  readonly layers: readonly ChunkLayer[];
}

export type ChunkErrorCode =
  | "truncated"
  | "bad_magic"
  | "unsupported_version"
  | "invalid_header"
  | "checksum_mismatch"
  | "spec_mismatch"
  | "too_large"
  /** Payload structure: non-zero padding, a NaN/Inf scale or raw value, unused code bits set. */
  | "invalid_payload"
  /** Writer side: the blocks or arrays handed to encodeChunk/packChunk disagree with the header or the spec. */
  | "invalid_input";

/** Typed failure of chunk parsing or validation. */
export class ChunkError extends MlaError<ChunkErrorCode> {
  override readonly name = "ChunkError";
  constructor(code: ChunkErrorCode, message: string) {
    super(code, message);
  }
}
